"""The real customize, extras, partition and uki-virt stages against a tree whose symbolic
links lead out of it: nothing outside the tree changes, byte for byte.

Each case runs in a fresh hostile tree (tests/unit/hostile_tree.py). A stage may refuse
(ComposerError) or do its work inside the tree; it may never touch the sentinel or anything
else beside the tree. Run as root, the chown paths run with real owners too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from composer.blueprint.customizations import Customizations, Locale, SshKey, Timezone, User
from composer.blueprint.files import Directory, File
from composer.build.fs.partitions import split_subtrees
from composer.build.placed_uki import take_placed_uki
from composer.core.errors import ComposerError
from composer.plan.load import parse
from composer.plan.plan import Plan, make_plan
from composer.rootfs import customize, extras

from ..hostile_tree import Hostile, fingerprint, make_hostile_tree

Stage = Callable[[Path, Path], object]  # (tree, work directory outside base) -> anything

ROOT_ONLY = os.getuid() == 0


def _plan(extra: str = "") -> Plan:
    return make_plan(parse(f'name = "hostile"\n{extra}'))


def _files(*paths: str) -> Stage:
    def run(tree: Path, work: Path) -> None:
        for p in paths:
            extras.write_file(tree, File.model_construct(path=p, data="pwned\n", mode="0600",
                                                         user=None, group=None))  # fmt: skip

    return run


def _dirs(*paths: str) -> Stage:
    def run(tree: Path, work: Path) -> None:
        for p in paths:
            d = Directory.model_construct(path=p, mode="0777", user=None, group=None,
                                          ensure_parents=True)  # fmt: skip
            extras.make_directory(tree, d)

    return run


def _keys(*users: str) -> Stage:
    def run(tree: Path, work: Path) -> None:
        keys = tuple(SshKey(user=u, key="ssh-ed25519 AAAAattacker") for u in users)
        customize.apply(tree, Customizations(sshkey=keys))

    return run


def _users(tree: Path, work: Path) -> None:
    """useradd --root (a chroot) makes the homes; the composer then adds the keys."""
    users = tuple(
        User(name=n, home=h, key="ssh-ed25519 AAAAattacker", groups=("sudo",))
        for n, h in (("u1", "/srv/u1"), ("u2", "/opt/u2"), ("u3", "/mnt/u3"))
    )
    customize.apply(tree, Customizations(user=users), secret=b"s" * 32, image="x")


def _customize(c: Customizations) -> Stage:
    return lambda tree, work: customize.apply(tree, c)


def _prepare(tree: Path, work: Path) -> None:
    customize.prepare_system(tree)
    customize.install_check_unit(tree)


def _extras(extra: str) -> Stage:
    return lambda tree, work: extras.apply(tree, _plan(extra))


def _locale(tree: Path, work: Path) -> None:
    extras.set_locale(tree, Locale(languages=("C.UTF-8",), keyboard="de"))


def _split(*mountpoints: str) -> Stage:
    def run(tree: Path, work: Path) -> None:
        plan = _plan()
        root = plan.partition("root")
        parts = tuple(
            replace(root, number=10 + i, designator="linux-generic", mountpoint=mp)
            for i, mp in enumerate(mountpoints)
        )
        split_subtrees(tree, (*plan.partitions, *parts), work / "parts")

    return run


def _uki(tree: Path, work: Path) -> None:
    take_placed_uki(tree, work / "uki")


CASES: dict[str, Stage] = {
    "files through an absolute link (srv -> sentinel)": _files("/srv/f", "/srv/data/keep"),
    "files through a climbing relative link (opt)": _files("/opt/f", "/opt/resolv.conf"),
    "files under Debian's var/run and var/lock": _files("/var/run/f", "/var/lock/f"),
    "files that are links out of the tree": _files("/etc/hosts", "/etc/resolv.conf"),
    "directories through links": _dirs("/srv/d/e", "/opt/d", "/var/run/d", "/mnt"),
    "ssh keys for homes through links": _keys("victim", "runner", "climber"),
    "users with homes through links (useradd --root)": _users,
    "host name into a linked /etc/hosts": _customize(Customizations(hostname="h1")),
    "time zone through a linked zoneinfo": _customize(
        Customizations(timezone=Timezone(timezone="Europe/Berlin"))
    ),
    "resolv.conf, machine-id and units through links": _prepare,
    "locale and keyboard through climbing links": _locale,
    "NTP servers, machine ID, fstab through links": _extras(
        '[customizations.timezone]\nntpservers = ["ntp.example"]\n'
        '[image]\nmachine_id = "5f3c0de1a2b94c7e8d6f1a2b3c4d5e6f"\n'
        '[[customizations.filesystem]]\nmountpoint = "/data"\n'
    ),
    "mount points crossing links": _split("/srv/data", "/opt/data", "/var/run/x", "/mnt"),
    "uki-virt record naming a file through a link": _uki,
}


@pytest.mark.parametrize("case", list(CASES))
def test_stage_writes_nothing_outside_the_tree(case: str, tmp_path: Path, resolution: str) -> None:
    hostile: Hostile = make_hostile_tree(tmp_path / "base")
    work = tmp_path / "work"
    work.mkdir()
    before = fingerprint(hostile.root, hostile.tree)
    with contextlib.suppress(ComposerError):  # refusing is fine; writing outside is not
        CASES[case](hostile.tree, work)
    after = fingerprint(hostile.root, hostile.tree)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{case}: changed outside the tree: {changed}"
    # the stage took nothing out of the sentinel either (moved files, copied UKIs)
    assert not [p for p in work.rglob("*") if p.is_file() and b"sentinel" in p.read_bytes()]


@pytest.mark.skipif(not ROOT_ONLY, reason="owners other than our own need root")
def test_chown_never_reaches_the_sentinel(tmp_path: Path, resolution: str) -> None:
    hostile = make_hostile_tree(tmp_path / "base")
    inside = hostile.tree / str(hostile.sentinel).lstrip("/") / "data"
    inside.parent.mkdir(parents=True)  # where the links lead when read inside the tree
    before = fingerprint(hostile.root, hostile.tree)
    nobody = 65534
    d = Directory(path="/srv/data", mode="0777", user=nobody, group=nobody, ensure_parents=True)
    extras.make_directory(hostile.tree, d)  # srv -> /…/sentinel: inside the tree
    extras.write_file(hostile.tree, File(path="/opt/data/keep", data="x", user=nobody))
    assert before == fingerprint(hostile.root, hostile.tree)
    assert inside.is_dir() and inside.stat().st_uid == nobody
    assert (inside / "keep").read_text() == "x" and (inside / "keep").stat().st_uid == nobody


def test_ssh_host_keys_are_dropped_and_made_early_at_first_boot(tmp_path: Path) -> None:
    """No host key of the build stays in the image; each machine makes its own in a unit that
    starts once / is writable (After=local-fs.target, no default dependencies), which sshd
    waits for, instead of in ssh.service at the end of the boot."""
    import configparser

    tree = tmp_path / "tree"
    (tree / "etc/ssh").mkdir(parents=True)
    (tree / "etc/ssh/sshd_config").write_text("")
    for key in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key"):
        (tree / "etc/ssh" / key).write_text("built here")
    customize.prepare_system(tree)
    assert sorted(p.name for p in (tree / "etc/ssh").iterdir()) == ["sshd_config"]

    def unit(path: str) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string((tree / path).read_text())
        return parser

    keys = unit(f"etc/systemd/system/{customize.SSH_KEYS_UNIT}")
    assert keys["Unit"]["DefaultDependencies"] == "no"
    assert keys["Unit"]["After"] == "local-fs.target"
    assert keys["Service"]["ExecStart"] == "/usr/bin/ssh-keygen -A"
    dropin = unit("etc/systemd/system/ssh.service.d/10-dps-composer-host-keys.conf")
    assert dropin["Unit"]["Wants"] == dropin["Unit"]["After"] == customize.SSH_KEYS_UNIT
    assert not dropin.has_section("Service")  # sshd's own `sshd -t` runs with the keys made


def test_no_ssh_server_no_host_key_unit(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    customize.prepare_system(tree)
    assert not (tree / "etc/systemd/system" / customize.SSH_KEYS_UNIT).exists()
