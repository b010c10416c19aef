"""Output formats: qemu-img options, the checks of what came out, format detection for boot.

The conversions run the real qemu-img / zstd / xz on a small sparse disk (a few MiB: fast)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from composer.build.outputs import (
    OutputCheckError,
    check_output,
    make_outputs,
    qemu_img_options,
)
from composer.core.errors import ComposerError
from composer.image.formats import FORMATS, detect_format

MiB = 1024 * 1024
needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("qemu-img", "zstd", "xz")), reason="qemu-img/zstd/xz"
)


def test_qemu_img_options() -> None:
    assert qemu_img_options("qcow2", "none") == []
    assert qemu_img_options("vmdk") == ["-o", "subformat=streamOptimized"]
    assert qemu_img_options("vhd") == ["-o", "subformat=fixed,force_size=on"]
    assert qemu_img_options("vhdx") == ["-o", "subformat=dynamic"]
    with pytest.raises(ValueError):  # a compressed qcow2 is ours (composer/image/qcow2.py)
        qemu_img_options("qcow2", "zstd")
    with pytest.raises(ValueError):
        qemu_img_options("raw.xz")


def test_format_table() -> None:
    assert FORMATS["vhd"].qemu == "vpc"
    assert FORMATS["raw.zst"].qemu is None and FORMATS["raw.xz"].qemu is None
    assert {n for n, f in FORMATS.items() if f.checkable} == {"qcow2", "vmdk", "vhdx"}


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    raw = tmp_path / "img.raw"
    with open(raw, "wb") as fh:
        fh.truncate(8 * MiB)
        fh.seek(MiB)
        fh.write(bytes(range(256)) * 4096)
    return raw


@needs_tools
def test_every_format_made_checked_and_detected(disk: Path, tmp_path: Path) -> None:
    entries = make_outputs(disk, list(FORMATS), lambda f: tmp_path / f"img.{f}", "zlib")
    assert [e.format for e in entries] == list(FORMATS)
    by = {e.format: e for e in entries}
    for e in entries:  # each digest is its own file's (they are made in other threads)
        assert e.sha256 == hashlib.sha256((tmp_path / e.file).read_bytes()).hexdigest()
        assert e.virtual_size == 8 * MiB
    assert "qemu-img check: no errors" in by["qcow2"].checked
    assert "qemu-img check: no errors" in by["vmdk"].checked
    assert "qemu-img check: no errors" in by["vhdx"].checked
    assert "fixed, whole MiB" in by["vhd"].checked
    assert by["vhd"].size == 8 * MiB + 512
    assert by["qcow2"].compression == "zlib"
    assert "intact" in by["raw.zst"].checked and "intact" in by["raw.xz"].checked
    expected = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhdx": "vhdx", "vhd": "vpc"}
    for fmt, driver in expected.items():
        assert detect_format(tmp_path / f"img.{fmt}") == driver, fmt
    for fmt in ("raw.zst", "raw.xz"):
        with pytest.raises(ComposerError, match="decompress"):
            detect_format(tmp_path / f"img.{fmt}")
    assert not list(tmp_path.glob(".*.tmp")), "temporary output left behind"


@needs_tools
def test_damaged_outputs_are_caught(disk: Path, tmp_path: Path) -> None:
    make_outputs(disk, ["vhd", "raw.zst"], lambda f: tmp_path / f"img.{f}")
    vhd = tmp_path / "img.vhd"
    with open(vhd, "r+b") as fh:  # break the footer's cookie
        fh.seek(-512, 2)
        fh.write(b"garbage!")
    with pytest.raises(OutputCheckError, match="footer"):
        check_output(vhd, "vhd", 8 * MiB)
    with pytest.raises(OutputCheckError, match="virtual size"):
        check_output(disk, "raw", 4 * MiB)
    zst = tmp_path / "img.raw.zst"
    zst.write_bytes(zst.read_bytes()[:-16])
    with pytest.raises(ComposerError, match="zstd"):
        check_output(zst, "raw.zst", 8 * MiB)


@needs_tools
def test_vhd_needs_a_whole_mib(tmp_path: Path) -> None:
    raw = tmp_path / "odd.raw"
    with open(raw, "wb") as fh:
        fh.truncate(MiB + 512)
    with pytest.raises(OutputCheckError, match="whole MiB"):
        make_outputs(raw, ["vhd"], lambda f: tmp_path / f"odd.{f}")


def test_sha256_of_sparse_file_equals_plain_hash(tmp_path: Path) -> None:
    from composer.core.hashing import CHUNK, sha256_file

    path = tmp_path / "sparse"
    with open(path, "wb") as fh:
        fh.truncate(3 * CHUNK + 123)
        fh.seek(CHUNK + 5)
        fh.write(b"data in the middle")
        fh.seek(3 * CHUNK + 100)
        fh.write(b"tail")
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()
    holes = tmp_path / "holes"
    with open(holes, "wb") as fh:
        fh.truncate(CHUNK * 2 + 7)
    assert sha256_file(holes) == hashlib.sha256(bytes(CHUNK * 2 + 7)).hexdigest()
