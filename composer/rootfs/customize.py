"""Apply the blueprint's customizations to a root tree, offline (no boot, no network)."""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath

from composer import DATA
from composer.blueprint.customizations import Customizations, User
from composer.core import tools
from composer.core.errors import ComposerError
from composer.core.secret import generated_hash
from composer.rootfs.intree import InTreeError, Tree
from composer.rootfs.pkgfacts import UNIT_DIRS, UNIT_SUFFIXES, unit_aliases, unit_name
from composer.target.accounts import GroupRule, user_groups
from composer.target.facts import load as target_facts

CHECK_UNIT = "dps-composer-check.service"
FSTAB_HEADER = (
    "# dps-composer: / and every partition with a Discoverable Partitions type are found\n"
    "# by systemd-gpt-auto-generator; no entries are needed for them here.\n"
)


def prepare_system(tree: Path) -> None:
    """What every image needs whatever the blueprint: first-boot identity, no fstab root."""
    with Tree(tree) as t:
        # mmdebstrap copies the build host's hostname and resolver; neither belongs in an
        # image. A link (systemd-resolved's stub, ../run/systemd/resolve/…) is the
        # distribution's own setting and stays as it is.
        t.unlink("/etc/hostname")
        resolv = t.lstat("/etc/resolv.conf")
        if resolv is None or not stat.S_ISLNK(resolv.st_mode):
            t.write("/etc/resolv.conf", "")
        # Empty machine-id: generated at first boot (ConditionFirstBoot), never baked in.
        t.write("/etc/machine-id", "", 0o444)
        t.unlink("/var/lib/dbus/machine-id")
        t.write("/etc/fstab", FSTAB_HEADER)
        t.makedirs("/efi")
        _first_boot_ssh_keys(t)


SSH_KEYS_UNIT = "dps-composer-ssh-host-keys.service"
SSH_KEYS_SERVICE = """\
[Unit]
Description=SSH host keys of this machine, made at its first boot
Documentation=man:ssh-keygen(1)
# as soon as the root file system is writable, beside the rest of early boot; sshd waits for it
DefaultDependencies=no
After=local-fs.target
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
# makes only the keys that are missing: a no-op after the first boot
ExecStart=/usr/bin/ssh-keygen -A
"""
SSH_KEYS_DROPIN = f"""\
[Unit]
Wants={SSH_KEYS_UNIT}
After={SSH_KEYS_UNIT}
"""


def _first_boot_ssh_keys(t: Tree) -> None:
    """openssh-server's postinst made host keys in the build: every machine made from the
    image would share them. Drop them; each machine makes its own at its first boot.

    Made by a unit of their own that starts once the root file system is writable, not in
    ssh.service (which starts with the services, after basic.target): key generation then
    runs beside the rest of early boot instead of holding up multi-user.target at its end
    (RSA under TCG: 4-5 s, the last unit the boot waited for)."""
    if not t.is_file("/etc/ssh/sshd_config"):
        return
    for name in t.listdir("/etc/ssh"):
        if name.startswith("ssh_host_"):
            t.unlink(f"/etc/ssh/{name}")
    t.write(f"/etc/systemd/system/{SSH_KEYS_UNIT}", SSH_KEYS_SERVICE)
    t.write("/etc/systemd/system/ssh.service.d/10-dps-composer-host-keys.conf", SSH_KEYS_DROPIN)


def install_check_unit(tree: Path) -> None:
    """The boot check: runs only when the VM carries the dps-composer.check credential."""
    data = DATA / "check"
    with Tree(tree) as t:
        t.write(f"/usr/lib/systemd/system/{CHECK_UNIT}", (data / CHECK_UNIT).read_text())
        t.write("/usr/libexec/dps-composer/check", (data / "dps-composer-check").read_text(), 0o755)
        wants = "/etc/systemd/system/multi-user.target.wants"
        t.makedirs(wants)
        t.symlink(f"{wants}/{CHECK_UNIT}", f"/usr/lib/systemd/system/{CHECK_UNIT}")


def apply(
    tree: Path,
    c: Customizations,
    *,
    secret: bytes | None = None,
    image: str = "",
    epoch: int | None = None,
) -> None:
    """Host name, groups, users, SSH keys, time zone. The shadow tools run with ``--root``
    (they chroot(2) into the tree) and ``--`` before the name. Every blueprint value in an
    argument list has been checked not to read as an option (composer/blueprint/values.py).
    ``epoch``: SOURCE_DATE_EPOCH for the shadow tools, which write the day of the last
    password change into /etc/shadow (today's date otherwise: an image built the next day
    would differ)."""
    root = str(tree)
    env = {"SOURCE_DATE_EPOCH": str(epoch)} if epoch is not None else {}
    with Tree(tree) as t:
        if c.hostname:
            t.write("/etc/hostname", c.hostname + "\n")
            _set_hosts(t, c.hostname)
        for group in c.group:
            # --force: an existing group is kept (osbuild/images pkg/osbuild/groups_stage.go)
            argv = ["groupadd", "--root", root, "--force"]
            if group.gid is not None:
                argv.append(f"--gid={group.gid}")
            tools.run([*argv, "--", group.name], env=env)
        for user in c.user:
            generated = _password_hash(user, secret, image)
            if _passwd_entry_or_none(t, user.name) is not None:
                _modify_user(t, user, env, generated)
            else:
                _add_user(t, user, env, generated)
        for key in c.sshkey:
            _add_key(t, key.user, key.key)
        if c.timezone.timezone:
            _set_timezone(t, c.timezone.timezone)


def set_services(tree: Path, c: Customizations) -> None:
    """Enable, disable, mask: after the blueprint's files and the composer's own units are in
    the tree, so that units they ship can be enabled (as osbuild enables units after its
    files stages). systemctl ``--root`` resolves inside the tree."""
    with Tree(tree) as t:
        for verb, units in (
            ("enable", [real_unit(t, u) for u in c.services.enabled]),
            ("disable", [real_unit(t, u) for u in c.services.disabled]),
            ("mask", list(c.services.masked)),
        ):
            if units:
                tools.run(["systemctl", f"--root={tree}", verb, "--", *units])


def real_unit(t: Tree, name: str) -> str:
    """The unit file an alias names (Debian's ssh.service is also sshd.service, the name
    Fedora-written blueprints use): systemctl refuses to enable or disable an alias."""
    unit = unit_name(name)
    paths = [f"/{d}/{unit}" for d in UNIT_DIRS]
    link = next((p for p in paths if t.readlink(p) is not None), None)
    if link is not None:
        target = PurePosixPath(t.readlink(link) or "").name
        if target != unit and target.endswith(UNIT_SUFFIXES):
            return target
    if any(t.exists(p) for p in paths):
        return unit
    for d in UNIT_DIRS:  # an Alias= of a unit nothing has enabled yet
        for name_ in sorted(t.listdir(f"/{d}")) if t.is_dir(f"/{d}") else []:
            path = f"/{d}/{name_}"
            if t.is_file(path) and unit in unit_aliases(t.read_text(path)):
                return name_
    return unit


def _set_hosts(t: Tree, hostname: str) -> None:
    text = t.read_text("/etc/hosts", default="127.0.0.1\tlocalhost\n")
    lines = [ln for ln in text.splitlines() if not ln.startswith("127.0.1.1")]
    lines.insert(1, f"127.0.1.1\t{hostname}")
    t.write("/etc/hosts", "\n".join(lines) + "\n")


def _password_hash(user: User, secret: bytes | None, image: str) -> str | None:
    """The crypt hash a user gets without giving one (generate_password), else None."""
    if not user.generate_password:
        return None
    if secret is None:
        raise ComposerError(
            f"customizations.user '{user.name}': generate_password needs the build's cache"
        )
    return generated_hash(secret, image, user.name)


def _add_user(t: Tree, user: User, env: dict[str, str], generated: str | None = None) -> None:
    root = str(t.root)
    # option values joined to their option (--opt=value): none can be read as an option
    argv = ["useradd", "--root", root, "--create-home", f"--shell={user.shell or '/bin/bash'}"]
    if user.description:
        argv.append(f"--comment={user.description}")
    if user.home:
        argv.append(f"--home-dir={user.home}")
    if user.uid is not None:
        argv.append(f"--uid={user.uid}")
    if user.gid is not None:
        argv.append(f"--gid={user.gid}")
    if user.groups:
        argv.append(f"--groups={','.join(_groups_for(t, user, env))}")
    if user.expire_date:
        argv.append(f"--expiredate={user.expire_date}")
    tools.run([*argv, "--", user.name], env=env)
    _password_and_key(t, user, env, generated)


def _modify_user(t: Tree, user: User, env: dict[str, str], generated: str | None = None) -> None:
    """A user the image already has (root): changed with usermod, as osbuild does
    (osbuild stages/org.osbuild.users: usermod; the uid of an existing user cannot change)."""
    uid, _, _ = _passwd_entry(t, user.name)
    if user.uid is not None and user.uid != uid:
        raise ComposerError(
            f"customizations.user '{user.name}': the image already has this user with uid "
            f"{uid}; its uid cannot be changed to {user.uid}"
        )
    argv = ["usermod", "--root", str(t.root)]
    if user.gid is not None:
        argv.append(f"--gid={user.gid}")
    if user.groups:
        argv.append(f"--groups={','.join(_groups_for(t, user, env))}")
    if user.description:
        argv.append(f"--comment={user.description}")
    if user.home:
        argv.append(f"--home={user.home}")
    if user.shell:
        argv.append(f"--shell={user.shell}")
    if user.expire_date:
        argv.append(f"--expiredate={user.expire_date}")
    if len(argv) > 3:
        tools.run([*argv, "--", user.name], env=env)
    _password_and_key(t, user, env, generated)


def _password_and_key(t: Tree, user: User, env: dict[str, str], generated: str | None) -> None:
    """What follows useradd or usermod: the password, a forced reset, the SSH key."""
    root = str(t.root)
    password = user.password or generated
    if password:
        # Through stdin only, never an argument list (the build log records those): a
        # crypt(3) hash as it is (chpasswd -e), plain text hashed here by chpasswd.
        plain = password == user.password and user.plain_password
        method = ["--crypt-method", "YESCRYPT"] if plain else ["--encrypted"]
        said = f"{user.name}:{password}\n".encode()
        tools.run(["chpasswd", "--root", root, *method], input=said, env=env)
    if user.force_password_reset:
        tools.run(["chage", "--root", root, "--lastday", "0", "--", user.name], env=env)
    if user.key:
        _add_key(t, user.name, user.key)


def _names(t: Tree, table: str) -> set[str]:
    return {ln.split(":", 1)[0] for ln in t.read_text(f"/etc/{table}").splitlines() if ln}


def _groups_for(t: Tree, user: User, env: dict[str, str]) -> list[str]:
    """The user's groups as this system names them (composer/target/accounts.py): the other
    family's administrator group mapped, its other base groups created as system groups."""
    family = "apt" if t.exists("/var/lib/dpkg/status") else "dnf"
    rule = GroupRule(family, target_facts("fedora" if family == "apt" else "debian-13").groups)
    names, create, missing = user_groups(rule, user.groups, _names(t, "group"))
    if missing:
        raise ComposerError(
            f"customizations.user '{user.name}': group(s) {', '.join(missing)} do not exist "
            "in the image; add them under [[customizations.group]]"
        )
    for group in create:
        argv = ["groupadd", "--root", str(t.root), "--system", "--force", "--", group]
        tools.run(argv, env=env)
    return names


def _passwd_entry_or_none(t: Tree, name: str) -> tuple[int, int, str] | None:
    for line in t.read_text("/etc/passwd").splitlines():
        fields = line.split(":")
        if len(fields) > 5 and fields[0] == name and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def _passwd_entry(t: Tree, name: str) -> tuple[int, int, str]:
    found = _passwd_entry_or_none(t, name)
    if found is None:
        raise ComposerError(f"customizations.sshkey: user '{name}' does not exist in the image")
    return found


def _add_key(t: Tree, user: str, key: str) -> None:
    """Append ``key`` to the user's ~/.ssh/authorized_keys, the home as the image's passwd
    names it and resolved inside the tree (a home under /var/run stays in the image)."""
    uid, gid, home = _passwd_entry(t, user)
    ssh = f"{home.rstrip('/')}/.ssh"
    keys = f"{ssh}/authorized_keys"
    try:
        t.makedirs(ssh, 0o700)
        t.set_mode(ssh, 0o700, (uid, gid))
        existing = t.read_text(keys, default="")
        t.write(keys, existing + key.strip() + "\n", 0o600, (uid, gid))
    except InTreeError as exc:
        raise ComposerError(f"customizations.sshkey: user '{user}': {exc}") from None


def _set_timezone(t: Tree, tz: str) -> None:
    zone = f"/usr/share/zoneinfo/{tz}"
    if ".." in tz.split("/") or not t.is_file(zone):
        raise ComposerError(
            f"customizations.timezone.timezone: '{tz}' is not a zone in the image (Debian's "
            "tzdata has the current names, tzdata-legacy the old ones such as US/Eastern)"
        )
    t.symlink("/etc/localtime", zone)
    t.write("/etc/timezone", tz + "\n")
