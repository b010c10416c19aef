"""Apply the blueprint's customizations to a root tree, offline (no boot, no network)."""

from __future__ import annotations

import stat
from pathlib import Path

from composer import DATA, tools
from composer.cache_secret import generated_hash
from composer.customizations import Customizations, User
from composer.errors import ComposerError
from composer.rootfs.intree import InTreeError, Tree

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


def _first_boot_ssh_keys(t: Tree) -> None:
    """openssh-server's postinst made host keys in the build: every machine made from the
    image would share them. Drop them; each machine makes its own before sshd starts."""
    if not t.is_file("/etc/ssh/sshd_config"):
        return
    for name in t.listdir("/etc/ssh"):
        if name.startswith("ssh_host_"):
            t.unlink(f"/etc/ssh/{name}")
    t.write(
        "/etc/systemd/system/ssh.service.d/10-dps-composer-host-keys.conf",
        # reset the list: a drop-in's ExecStartPre= runs after the unit's own `sshd -t`,
        # which fails while there are no host keys yet (ssh.service then never starts)
        "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\n"
        "ExecStartPre=/usr/sbin/sshd -t\n",
    )


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
    tree: Path, c: Customizations, log: Path, *, secret: bytes | None = None, image: str = ""
) -> None:
    """Host name, groups, users, SSH keys, time zone, services. The shadow tools run with
    ``--root`` (they chroot(2) into the tree) and ``--`` before the name; systemctl
    ``--root`` resolves inside the tree too. Every blueprint value in an argument list has
    been checked not to read as an option (composer/value_checks.py)."""
    root = str(tree)
    with Tree(tree) as t:
        if c.hostname:
            t.write("/etc/hostname", c.hostname + "\n")
            _set_hosts(t, c.hostname)
        for group in c.group:
            argv = ["groupadd", "--root", root]
            if group.gid is not None:
                argv.append(f"--gid={group.gid}")
            tools.run([*argv, "--", group.name], log=log)
        for user in c.user:
            _add_user(t, user, log, _password_hash(user, secret, image))
        for key in c.sshkey:
            _add_key(t, key.user, key.key)
        if c.timezone.timezone:
            _set_timezone(t, c.timezone.timezone)
    for verb, units in (
        ("enable", c.services.enabled),
        ("disable", c.services.disabled),
        ("mask", c.services.masked),
    ):
        if units:
            tools.run(["systemctl", f"--root={root}", verb, "--", *units], log=log)


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


def _add_user(t: Tree, user: User, log: Path, generated: str | None = None) -> None:
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
        missing = [g for g in user.groups if not _has_group(t, g)]
        if missing:
            raise ComposerError(
                f"customizations.user '{user.name}': group(s) {', '.join(missing)} do not exist "
                "in the image; add them under [[customizations.group]]"
            )
        argv.append(f"--groups={','.join(user.groups)}")
    if user.expire_date:
        argv.append(f"--expiredate={user.expire_date}")
    tools.run([*argv, "--", user.name], log=log)
    password = user.password or generated
    if password:
        # Through stdin only, never an argument list (the build log records those): a
        # crypt(3) hash as it is (chpasswd -e), plain text hashed here by chpasswd.
        plain = password == user.password and user.plain_password
        method = ["--crypt-method", "YESCRYPT"] if plain else ["--encrypted"]
        tools.run(["chpasswd", "--root", root, *method], input=f"{user.name}:{password}\n".encode())
    if user.force_password_reset:
        tools.run(["chage", "--root", root, "--lastday", "0", "--", user.name], log=log)
    if user.key:
        _add_key(t, user.name, user.key)


def _has_group(t: Tree, name: str) -> bool:
    return any(ln.split(":", 1)[0] == name for ln in t.read_text("/etc/group").splitlines())


def _passwd_entry(t: Tree, name: str) -> tuple[int, int, str]:
    for line in t.read_text("/etc/passwd").splitlines():
        fields = line.split(":")
        if len(fields) > 5 and fields[0] == name and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3]), fields[5]
    raise ComposerError(f"customizations.sshkey: user '{name}' does not exist in the image")


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
            f"customizations.timezone.timezone: '{tz}' is not a zone in the image "
            "(is the tzdata package listed in [[packages]]?)"
        )
    t.symlink("/etc/localtime", zone)
    t.write("/etc/timezone", tz + "\n")
