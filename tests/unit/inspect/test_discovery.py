"""judge_discovery(): what keeps an image from auto-discovering its root; file system probes."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from composer.image.probe import FsInfo, probe, probe_bytes
from composer.inspect.discovery import judge_discovery
from composer.inspect.report import EfiBinary, PartitionInfo, Report
from composer.spec import dps, osrelease

ESP = str(dps.by_name("esp").uuid)
ROOT = str(dps.by_name("root-x86-64").uuid)
ROOT_ARM = str(dps.by_name("root-arm64").uuid)
GENERIC = str(dps.by_name("linux-generic").uuid)
NO_AUTO = 1 << 63


def part(n: int, type_uuid: str, fs: str | None = "ext4", attrs: int = 0) -> PartitionInfo:
    known = dps.by_uuid(type_uuid)
    return PartitionInfo(
        n,
        n * 2**20,
        2**20,
        type_uuid,
        known.name if known else None,
        known.designator if known else None,
        known.arch if known else None,
        str(uuid.uuid4()),
        f"p{n}",
        attrs,
        dps.flag_names(attrs),
        FsInfo(fs) if fs else None,
    )


def uki(cmdline: str = "console=ttyS0") -> EfiBinary:
    return EfiBinary("/EFI/Linux/x.efi", 1, "uki", "x86-64", {".linux": 1}, [], cmdline=cmdline)


def good() -> Report:
    return Report(
        "img",
        "raw",
        partitions=[part(1, ESP, "vfat"), part(2, ROOT)],
        esp_files=["/EFI/BOOT/BOOTX64.EFI", "/EFI/Linux/x.efi"],
        efi=[uki()],
        os_release={"ID": "debian"},
        root_read="debugfs (ext4)",
    )


def test_good_image_is_discovered() -> None:
    d = judge_discovery(good(), "x86-64")
    assert d.ok and d.root == 2 and not d.problems and not d.warnings


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"partitions": [part(1, ESP, "vfat"), part(2, GENERIC)]}, "has type linux-generic"),
        ({"partitions": [part(2, ROOT)]}, "no EFI System Partition"),
        ({"partitions": [part(1, ESP, "vfat"), part(2, ROOT, attrs=NO_AUTO)]}, "no-auto flag"),
        ({"partitions": [part(1, ESP, "vfat"), part(2, ROOT_ARM)]}, "is root-arm64"),
        ({"partitions": [part(1, ESP, "ext4"), part(2, ROOT)]}, "has no FAT file system"),
        ({"partitions": [part(1, ESP, "vfat"), part(2, ROOT, fs=None)]}, "no file system"),
        ({"efi": [uki("root=/dev/vda2 ro")]}, "root=/dev/vda2 on its command line"),
        ({"fstab": ["UUID=1234 / ext4 defaults 0 1"]}, "/etc/fstab mounts /"),
    ],
)
def test_each_blocker_is_named(change: dict[str, object], expected: str) -> None:
    d = judge_discovery(replace(good(), **change), "x86-64")  # type: ignore[arg-type]
    assert not d.ok
    assert any(expected in p for p in d.problems), d.problems


def test_root_not_first_of_its_type_is_a_warning() -> None:
    parts = [part(1, ESP, "vfat"), part(2, ROOT, attrs=NO_AUTO), part(3, ROOT), part(4, ROOT)]
    d = judge_discovery(replace(good(), partitions=parts), "x86-64")
    assert d.ok and d.root == 3
    assert any("partition 2 'p2' has no-auto" in w for w in d.warnings)
    assert any("several root-x86-64 partitions" in w for w in d.warnings)


def test_missing_loader_and_loader_interface_are_warnings() -> None:
    d = judge_discovery(replace(good(), esp_files=[], efi=[]), "x86-64")
    assert d.ok
    assert any("/EFI/BOOT/BOOTX64.EFI" in w for w in d.warnings)
    assert any("LoaderDevicePartUUID" in w for w in d.warnings)


def test_os_release_parsing() -> None:
    text = 'NAME="Debian GNU/Linux"\nID=debian\n# comment\nVERSION_ID="13"\n'
    assert osrelease.parse(text) == {
        "NAME": "Debian GNU/Linux",
        "ID": "debian",
        "VERSION_ID": "13",
    }


def test_probe_real_file_systems(tmp_path: Path) -> None:
    ext4, vfat, swap = tmp_path / "ext4", tmp_path / "vfat", tmp_path / "swap"
    fs_uuid = "0d9e3c76-3f29-4a46-9f51-6f0f2a1c2b4e"
    for f in (ext4, swap):
        f.write_bytes(bytes(8 * 2**20))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-U", fs_uuid, str(ext4)], check=True)
    subprocess.run(
        ["mkfs.vfat", "-F", "32", "-n", "ESP", "-i", "1234ABCD", "-C", str(vfat), "40000"],
        check=True,
        capture_output=True,
    )
    subprocess.run(["mkswap", "-L", "sw", str(swap)], check=True, capture_output=True)
    with open(ext4, "rb") as fh:
        assert probe(fh, 0, 8 * 2**20) == FsInfo("ext4", fs_uuid, "rootfs")
    with open(vfat, "rb") as fh:
        assert probe(fh, 0, 2**20) == FsInfo("vfat", "1234-ABCD", "ESP")
    with open(swap, "rb") as fh:
        info = probe(fh, 0, 2**20)
        assert info is not None and info.type == "swap" and info.label == "sw"


def test_probe_synthetic_superblocks() -> None:
    u = uuid.uuid4()
    xfs = b"XFSB" + bytes(28) + u.bytes + bytes(60) + b"data\0"
    assert probe_bytes(xfs) == FsInfo("xfs", str(u), "data")
    btrfs = bytearray(0x10200)
    btrfs[0x10020:0x10030] = u.bytes
    btrfs[0x10040:0x10048] = b"_BHRfS_M"
    btrfs[0x1012B:0x1012F] = b"home"
    assert probe_bytes(bytes(btrfs)) == FsInfo("btrfs", str(u), "home")
    assert probe_bytes(bytes(4096)) is None


def test_list_vfat_tree_empty_and_nested(tmp_path: Path) -> None:
    from composer.build.fs.fs import make_vfat
    from composer.image.read import list_vfat_tree

    empty, tree = tmp_path / "empty", tmp_path / "tree"
    empty.mkdir()
    (tree / "EFI/BOOT").mkdir(parents=True)
    (tree / "EFI/BOOT/BOOTX64.EFI").write_bytes(b"MZ")
    (tree / "loader").mkdir()
    (tree / "loader/loader.conf").write_text("timeout 0\n")
    for name, src in (("e.img", empty), ("t.img", tree)):
        make_vfat(tmp_path / name, 40 * 2**20, src, "12345678", "ESP")
    assert list_vfat_tree(tmp_path / "e.img", 0) == []
    assert list_vfat_tree(tmp_path / "t.img", 0) == ["/EFI/BOOT/BOOTX64.EFI", "/loader/loader.conf"]
