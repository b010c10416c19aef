"""Splitting the root tree by mount point, and the xfs protofile (temp directories only)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from composer.build.fs.mkfs import tree_bytes, xfs_protofile
from composer.build.fs.partitions import manifest_entry, split_subtrees
from composer.plan.load import load
from composer.plan.plan import make_plan

ROOT = Path(__file__).resolve().parents[4]


def make_tree(root: Path) -> None:
    for d in ("usr/bin", "var/lib/dpkg", "var/tmp", "home/admin", "boot", "srv", "etc"):
        (root / d).mkdir(parents=True)
    (root / "usr/bin/tool").write_text("x")
    (root / "var/lib/dpkg/status").write_text("s")
    (root / "var/tmp/scratch").write_text("t")
    (root / "home/admin/.bashrc").write_text("b")
    (root / "boot/vmlinuz-6").write_text("k")
    (root / "etc/hostname").write_text("h")
    (root / "var/tmp").chmod(0o1777)


def test_split_moves_each_subtree_deepest_first(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_tree(root)
    plan = make_plan(load(ROOT / "blueprints/debian-dps-layout.toml"))
    trees = split_subtrees(root, plan.partitions, tmp_path / "parts")
    by_mp = {p.mountpoint: trees[p.number] for p in plan.partitions if p.number in trees}
    assert set(by_mp) == {"/boot", "/usr", "/var", "/var/tmp", "/home", "/srv", "/opt"}
    assert (by_mp["/var/tmp"] / "scratch").read_text() == "t"
    assert stat.S_IMODE(by_mp["/var/tmp"].stat().st_mode) == 0o1777
    assert (by_mp["/var"] / "lib/dpkg/status").exists()
    assert list((by_mp["/var"] / "tmp").iterdir()) == []  # the mount point stays, empty
    assert (by_mp["/usr"] / "bin/tool").exists() and list((root / "usr").iterdir()) == []
    assert (by_mp["/home"] / "admin/.bashrc").exists()
    assert (root / "opt").is_dir() and (root / "etc/hostname").exists()


def test_xfs_protofile_describes_a_plain_tree(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "a/b").mkdir(parents=True)
    (tree / "a/b/file").write_text("data")
    (tree / "a/run").write_text("#!/bin/sh\n")
    (tree / "a/run").chmod(0o4755)
    (tree / "link").symlink_to("a/b/file")
    os.mkfifo(tree / "fifo")
    proto = xfs_protofile(tree)
    assert proto is not None
    lines = proto.splitlines()
    assert lines[:2] == ["dps-composer", "0 0"]
    assert f" a d--755 {os.getuid()} {os.getgid()}" in lines
    assert f"   file ---644 {os.getuid()} {os.getgid()} {tree}/a/b/file" in lines
    assert f"  run -u-755 {os.getuid()} {os.getgid()} {tree}/a/run" in lines
    assert f" link l--777 {os.getuid()} {os.getgid()} a/b/file" in lines
    assert proto.count("$") == 3 and lines[-1] == "$"
    assert tree_bytes(tree) > 0


def test_xfs_protofile_refuses_what_it_cannot_say(tmp_path: Path) -> None:
    def sticky(t: Path) -> None:
        (t / "sticky").mkdir()
        (t / "sticky").chmod(0o1777)

    def hard_link(t: Path) -> None:
        (t / "a").write_text("")
        os.link(t / "a", t / "b")

    setups: list[Callable[[Path], object]] = [
        sticky,
        lambda t: (t / "with space").write_text(""),
        hard_link,
        lambda t: (t / "c:d").write_text(""),
    ]
    for setup in setups:
        tree = tmp_path / f"t{id(setup)}"
        tree.mkdir()
        setup(tree)
        assert xfs_protofile(tree) is None


def test_manifest_entry_carries_flags_and_fstab() -> None:
    plan = make_plan(load(ROOT / "blueprints/debian-erofs-usr.toml"))
    usr = manifest_entry(plan.partition("usr"))
    assert usr.read_only and usr.flags == ["read-only"] and usr.attrs == 1 << 60
    assert manifest_entry(plan.partition("root")).flags == ["grow-fs"]
