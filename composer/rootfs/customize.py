"""Apply the blueprint's customizations to a root tree, offline (no boot, no network)."""

from __future__ import annotations

import os
from pathlib import Path

from composer import DATA, tools
from composer.accounts import GroupRule, user_groups
from composer.customizations import Customizations, User
from composer.errors import ComposerError
from composer.pkgfacts import UNIT_DIRS, UNIT_SUFFIXES, unit_aliases, unit_name
from composer.targets import load as target_facts

CHECK_UNIT = "dps-composer-check.service"
FSTAB_HEADER = (
    "# dps-composer: / and every partition with a Discoverable Partitions type are found\n"
    "# by systemd-gpt-auto-generator; no entries are needed for them here.\n"
)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def prepare_system(tree: Path) -> None:
    """What every image needs whatever the blueprint: first-boot identity, no fstab root."""
    # mmdebstrap copies the build host's hostname and resolver; neither belongs in an image.
    (tree / "etc/hostname").unlink(missing_ok=True)
    _write(tree / "etc/resolv.conf", "")
    # Empty machine-id: generated at first boot (ConditionFirstBoot), never baked in.
    _write(tree / "etc/machine-id", "", 0o444)
    (tree / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    _write(tree / "etc/fstab", FSTAB_HEADER)
    (tree / "efi").mkdir(mode=0o755, exist_ok=True)
    _first_boot_ssh_keys(tree)


def _first_boot_ssh_keys(tree: Path) -> None:
    """openssh-server's postinst made host keys in the build: every machine made from the
    image would share them. Drop them; each machine makes its own before sshd starts."""
    ssh = tree / "etc/ssh"
    if not (ssh / "sshd_config").exists():
        return
    for key in ssh.glob("ssh_host_*"):
        key.unlink()
    _write(
        tree / "etc/systemd/system/ssh.service.d/10-dps-composer-host-keys.conf",
        # reset the list: a drop-in's ExecStartPre= runs after the unit's own `sshd -t`,
        # which fails while there are no host keys yet (ssh.service then never starts)
        "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\n"
        "ExecStartPre=/usr/sbin/sshd -t\n",
    )


def install_check_unit(tree: Path) -> None:
    """The boot check: runs only when the VM carries the dps-composer.check credential."""
    data = DATA / "check"
    unit_dir = tree / "usr/lib/systemd/system"
    script = tree / "usr/libexec/dps-composer/check"
    _write(unit_dir / CHECK_UNIT, (data / CHECK_UNIT).read_text())
    _write(script, (data / "dps-composer-check").read_text(), 0o755)
    wants = tree / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / CHECK_UNIT
    link.unlink(missing_ok=True)
    link.symlink_to(f"/usr/lib/systemd/system/{CHECK_UNIT}")


def apply(tree: Path, c: Customizations, log: Path) -> None:
    if c.hostname:
        _write(tree / "etc/hostname", c.hostname + "\n")
        _set_hosts(tree, c.hostname)
    for group in c.group:
        # --force: an existing group is kept (osbuild/images pkg/osbuild/groups_stage.go)
        argv = ["groupadd", "--root", str(tree), "--force"]
        if group.gid is not None:
            argv += ["--gid", str(group.gid)]
        tools.run([*argv, group.name], log=log)
    for user in c.user:
        if _passwd_entry_or_none(tree, user.name) is not None:
            _modify_user(tree, user, log)
        else:
            _add_user(tree, user, log)
    for key in c.sshkey:
        _add_key(tree, key.user, key.key)
    if c.timezone.timezone:
        _set_timezone(tree, c.timezone.timezone)


def set_services(tree: Path, c: Customizations, log: Path) -> None:
    """Enable, disable, mask: after the blueprint's files and the composer's own units are in
    the tree, so that units they ship can be enabled (as osbuild enables units after its
    files stages)."""
    for verb, units in (
        ("enable", [real_unit(tree, u) for u in c.services.enabled]),
        ("disable", [real_unit(tree, u) for u in c.services.disabled]),
        ("mask", c.services.masked),
    ):
        if units:
            tools.run(["systemctl", f"--root={tree}", verb, *units], log=log)


def real_unit(tree: Path, name: str) -> str:
    """The unit file an alias names (Debian's ssh.service is also sshd.service, the name
    Fedora-written blueprints use): systemctl refuses to enable or disable an alias."""
    unit = unit_name(name)
    files = [tree / d / unit for d in UNIT_DIRS]
    link = next((f for f in files if f.is_symlink()), None)
    if link is not None:
        target = Path(os.readlink(link)).name
        if target != unit and target.endswith(UNIT_SUFFIXES):
            return target
    if any(f.exists() for f in files):
        return unit
    for d in UNIT_DIRS:  # an Alias= of a unit nothing has enabled yet
        for f in sorted((tree / d).glob("*")) if (tree / d).is_dir() else []:
            if f.is_file() and not f.is_symlink() and unit in unit_aliases(f.read_text()):
                return f.name
    return unit


def _set_hosts(tree: Path, hostname: str) -> None:
    hosts = tree / "etc/hosts"
    lines = hosts.read_text().splitlines() if hosts.exists() else ["127.0.0.1\tlocalhost"]
    lines = [ln for ln in lines if not ln.startswith("127.0.1.1")]
    lines.insert(1, f"127.0.1.1\t{hostname}")
    _write(hosts, "\n".join(lines) + "\n")


def _add_user(tree: Path, user: User, log: Path) -> None:
    argv = ["useradd", "--root", str(tree), "--create-home", "--shell", user.shell or "/bin/bash"]
    if user.description:
        argv += ["--comment", user.description]
    if user.home:
        argv += ["--home-dir", user.home]
    if user.uid is not None:
        argv += ["--uid", str(user.uid)]
    if user.gid is not None:
        argv += ["--gid", str(user.gid)]
    if user.groups:
        argv += ["--groups", ",".join(_groups_for(tree, user, log))]
    if user.password and not user.plain_password:
        argv += ["--password", user.password]
    if user.expire_date:
        argv += ["--expiredate", user.expire_date]
    tools.run([*argv, user.name], log=log)
    _password_and_key(tree, user, log)


def _password_and_key(tree: Path, user: User, log: Path) -> None:
    """What follows useradd or usermod: a plain password, a forced reset, the SSH key."""
    if user.password and user.plain_password:
        # Hashed here, at build time, by chpasswd: the text goes through stdin only (never
        # a command line, the log or the plan).
        tools.run(
            ["chpasswd", "--root", str(tree), "--crypt-method", "YESCRYPT"],
            input=f"{user.name}:{user.password}\n".encode(),
        )
    if user.force_password_reset:
        tools.run(["chage", "--root", str(tree), "--lastday", "0", user.name], log=log)
    if user.key:
        _add_key(tree, user.name, user.key)


def _names(tree: Path, table: str) -> set[str]:
    return {ln.split(":", 1)[0] for ln in (tree / "etc" / table).read_text().splitlines() if ln}


def _family(tree: Path) -> str:
    return "apt" if (tree / "var/lib/dpkg/status").exists() else "dnf"


def _groups_for(tree: Path, user: User, log: Path) -> list[str]:
    """The user's groups as this system names them (composer/accounts.py): the other
    family's administrator group mapped, its other base groups created as system groups."""
    family = _family(tree)
    rule = GroupRule(family, target_facts("fedora" if family == "apt" else "debian-13").groups)
    names, create, missing = user_groups(rule, user.groups, _names(tree, "group"))
    if missing:
        raise ComposerError(
            f"customizations.user '{user.name}': group(s) {', '.join(missing)} do not exist "
            "in the image; add them under [[customizations.group]]"
        )
    for group in create:
        tools.run(["groupadd", "--root", str(tree), "--system", "--force", group], log=log)
    return names


def _modify_user(tree: Path, user: User, log: Path) -> None:
    """A user the image already has (root): changed with usermod, as osbuild does
    (osbuild stages/org.osbuild.users: usermod; the uid of an existing user cannot change)."""
    uid, _, _ = _passwd_entry(tree, user.name)
    if user.uid is not None and user.uid != uid:
        raise ComposerError(
            f"customizations.user '{user.name}': the image already has this user with uid "
            f"{uid}; its uid cannot be changed to {user.uid}"
        )
    argv = ["usermod", "--root", str(tree)]
    if user.gid is not None:
        argv += ["--gid", str(user.gid)]
    if user.groups:
        argv += ["--groups", ",".join(_groups_for(tree, user, log))]
    if user.description:
        argv += ["--comment", user.description]
    if user.home:
        argv += ["--home", user.home]
    if user.shell:
        argv += ["--shell", user.shell]
    if user.password and not user.plain_password:
        argv += ["--password", user.password]
    if user.expire_date:
        argv += ["--expiredate", user.expire_date]
    if len(argv) > 3:
        tools.run([*argv, user.name], log=log)
    _password_and_key(tree, user, log)


def _passwd_entry_or_none(tree: Path, name: str) -> tuple[int, int, str] | None:
    for line in (tree / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name and len(fields) > 5:
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def _passwd_entry(tree: Path, name: str) -> tuple[int, int, str]:
    found = _passwd_entry_or_none(tree, name)
    if found is None:
        raise ComposerError(f"customizations.sshkey: user '{name}' does not exist in the image")
    return found


def _add_key(tree: Path, user: str, key: str) -> None:
    uid, gid, home = _passwd_entry(tree, user)
    ssh = tree / home.lstrip("/") / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = ssh / "authorized_keys"
    existing = keys.read_text() if keys.exists() else ""
    keys.write_text(existing + key.strip() + "\n")
    keys.chmod(0o600)
    for path in (ssh, keys):
        os.chown(path, uid, gid)


def _set_timezone(tree: Path, tz: str) -> None:
    zone = tree / "usr/share/zoneinfo" / tz
    if ".." in tz or not zone.is_file():
        raise ComposerError(
            f"customizations.timezone.timezone: '{tz}' is not a zone in the image (Debian's "
            "tzdata has the current names, tzdata-legacy the old ones such as US/Eastern)"
        )
    localtime = tree / "etc/localtime"
    localtime.unlink(missing_ok=True)
    localtime.symlink_to(f"/usr/share/zoneinfo/{tz}")
    _write(tree / "etc/timezone", tz + "\n")
