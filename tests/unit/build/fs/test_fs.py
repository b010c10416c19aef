"""copy_into: a file system image spliced into a disk image at an offset, holes kept, also when
the two are on different file systems (scratch directory and output directory)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from composer.build.fs.fs import copy_into

SHM = Path("/dev/shm")


def _sparse_source(path: Path) -> bytes:
    with open(path, "wb") as fh:
        fh.truncate(4 << 20)
        fh.seek(1 << 20)
        fh.write(b"A" * 4096)
        fh.seek(3 << 20)
        fh.write(b"B" * 100)
    return path.read_bytes()


def _copy_and_compare(src: Path, dest: Path) -> None:
    data = _sparse_source(src)
    with open(dest, "wb") as fh:
        fh.truncate(8 << 20)
    copy_into(src, dest, 1 << 20)
    out = dest.read_bytes()
    assert out[1 << 20 : 5 << 20] == data
    assert out[: 1 << 20] == bytes(1 << 20) and out[5 << 20 :] == bytes(3 << 20)
    assert dest.stat().st_blocks * 512 < 1 << 20  # the holes stayed holes


def test_same_file_system(tmp_path: Path) -> None:
    _copy_and_compare(tmp_path / "fs.img", tmp_path / "disk.raw")


@pytest.mark.skipif(
    not SHM.is_dir() or SHM.stat().st_dev == Path(tempfile.gettempdir()).stat().st_dev,
    reason="needs a second file system (/dev/shm)",
)
def test_across_file_systems(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir=SHM) as other:
        src = Path(other) / "fs.img"
        assert os.stat(other).st_dev != tmp_path.stat().st_dev
        _copy_and_compare(src, tmp_path / "disk.raw")
