"""FAT timestamps fixed after mtools: two images made at different times are identical."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from composer.build.fs.fattimes import dos_datetime, fix_fat_times
from composer.build.fs.fs import Reproducible, make_vfat

pytestmark = pytest.mark.skipif(not shutil.which("mcopy"), reason="mtools not installed")


def test_dos_datetime() -> None:
    # 2023-11-14 22:13:20 UTC
    date, clock = dos_datetime(1700000000)
    assert (date >> 9) + 1980 == 2023 and (date >> 5) & 15 == 11 and date & 31 == 14
    assert clock >> 11 == 22 and (clock >> 5) & 63 == 13 and (clock & 31) * 2 == 20
    assert dos_datetime(0) == dos_datetime(315532800)  # clamped to 1980


def _tree(root: Path) -> Path:
    (root / "EFI/BOOT").mkdir(parents=True)
    (root / "EFI/BOOT/BOOTX64.EFI").write_bytes(b"MZ" + bytes(5000))
    (root / "loader").mkdir()
    (root / "loader/loader.conf").write_text("timeout 0\n")
    return root


@pytest.mark.parametrize("size_mib", [40, 300])  # FAT16-sized and FAT32
def test_two_images_at_different_times_are_identical(tmp_path: Path, size_mib: int) -> None:
    tree = _tree(tmp_path / "tree")
    repro = Reproducible(epoch=1700000000)
    images = []
    for i, mtime in enumerate((1500000000, 1600000000)):
        for path in [tree, *tree.rglob("*")]:
            os.utime(path, (mtime, mtime))
        image = tmp_path / f"esp{i}.img"
        make_vfat(image, size_mib << 20, tree, "12345678", "ESP", repro)
        images.append(image.read_bytes())
    assert images[0] == images[1]
    fsck = subprocess.run(["fsck.vfat", "-n", str(tmp_path / "esp0.img")], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout
    listing = subprocess.run(
        ["mdir", "-i", str(tmp_path / "esp0.img"), "::/EFI/BOOT"],
        capture_output=True,
        text=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    assert "2023-11-14" in listing and "BOOTX64" in listing


def test_fix_returns_entry_count(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    image = tmp_path / "esp.img"
    make_vfat(image, 40 << 20, tree, "12345678", "ESP")
    # volume label, EFI, loader, BOOT (+ . and ..), BOOTX64.EFI, loader.conf, . and .. of loader
    assert fix_fat_times(image, 1700000000) >= 6
