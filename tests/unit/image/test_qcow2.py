"""The compressed qcow2 writer, judged by QEMU's own tools: `qemu-img check` (refcounts,
L1/L2 flags, overlaps) and `qemu-img compare` (every guest byte reads back as in the raw disk)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from composer.image import qcow2
from composer.image.qcow2 import CLUSTER, REFCOUNTS_PER_BLOCK, write_qcow2

MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img")


def disk(path: Path) -> Path:
    """A sparse raw disk of 1 GiB + 1.5 KiB (its last cluster is partial) holding: text that
    compresses, a random cluster that does not, a cluster of written zeros, data past the
    first L2 table's 512 MiB, and data in the partial last cluster."""
    rng = random.Random(7)
    with open(path, "wb") as fh:
        fh.truncate(1024 * MiB + 1536)
        fh.seek(MiB)
        fh.write(b"a disk image, compressible\n" * 40000)
        fh.seek(3 * MiB)
        fh.write(rng.randbytes(CLUSTER))
        fh.seek(5 * MiB)
        fh.write(bytes(CLUSTER))
        fh.seek(700 * MiB - 10)
        fh.write(b"across two clusters")
        fh.seek(1024 * MiB + 1000)
        fh.write(b"the tail")
    return path


def qemu_check(image: Path) -> dict[str, int]:
    out = subprocess.run(
        ["qemu-img", "check", "--output=json", "-f", "qcow2", str(image)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report: dict[str, int] = json.loads(out.stdout)
    return report


@pytest.mark.parametrize("kind", ["zstd", "zlib"])
def test_qemu_reads_back_every_byte(tmp_path: Path, kind: str) -> None:
    raw = disk(tmp_path / "disk.raw")
    image = tmp_path / "disk.qcow2"
    write_qcow2(raw, image, kind, workers=2)
    report = qemu_check(image)
    assert not any(report.get(k) for k in ("check-errors", "corruptions", "leaks")), report
    # 17 clusters of text, the random one, two across 700 MiB, the tail; not the written zeros
    assert report["allocated-clusters"] == 21, report
    assert report["compressed-clusters"] == 20, report  # the random cluster is stored whole
    compare = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(image)],
        capture_output=True,
        text=True,
    )
    assert compare.returncode == 0, compare.stdout + compare.stderr
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(image)], capture_output=True, check=True
        ).stdout
    )
    assert info["virtual-size"] == raw.stat().st_size
    assert info["format-specific"]["data"]["compression-type"] == kind
    # written zeros and holes are not stored: far less than the disk's 1 GiB
    assert image.stat().st_size < 2 * MiB


def test_same_disk_same_bytes_on_any_number_of_threads(tmp_path: Path) -> None:
    raw = disk(tmp_path / "disk.raw")
    made: list[bytes] = []
    for workers in (1, 3, 3):
        image = tmp_path / f"disk-{len(made)}.qcow2"
        write_qcow2(raw, image, "zstd", workers=workers)
        made.append(image.read_bytes())
    assert made[0] == made[1] == made[2]


def test_an_empty_disk_has_no_tables_and_reads_as_zeros(tmp_path: Path) -> None:
    raw = tmp_path / "empty.raw"
    with open(raw, "wb") as fh:
        fh.truncate(64 * MiB)
    image = tmp_path / "empty.qcow2"
    write_qcow2(raw, image)
    assert qemu_check(image).get("allocated-clusters", 0) == 0
    subprocess.run(["qemu-img", "compare", "-q", str(raw), str(image)], check=True)


def test_refcount_blocks_count_themselves() -> None:
    for before in (
        1,
        100,
        REFCOUNTS_PER_BLOCK - 2,
        REFCOUNTS_PER_BLOCK - 1,
        5 * REFCOUNTS_PER_BLOCK,
    ):
        table, blocks = qcow2._refcount_layout(before)
        total = before + table + blocks
        assert blocks * REFCOUNTS_PER_BLOCK >= total > (blocks - 1) * REFCOUNTS_PER_BLOCK, before
        assert table * CLUSTER >= blocks * 8 > (table - 1) * CLUSTER, before
    assert qcow2._refcount_layout(REFCOUNTS_PER_BLOCK - 2) == (1, 1)
    assert qcow2._refcount_layout(REFCOUNTS_PER_BLOCK - 1) == (1, 2)


def test_an_unknown_compression_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    raw = tmp_path / "empty.raw"
    raw.write_bytes(b"")
    with pytest.raises(ValueError, match="zstd or zlib"):
        write_qcow2(raw, tmp_path / "out.qcow2", "lz4")
    assert not (tmp_path / "out.qcow2").exists()


def test_a_disk_of_part_of_a_sector_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "odd.raw"
    raw.write_bytes(b"x" * 1000)
    with pytest.raises(ValueError, match="512-byte sectors"):
        write_qcow2(raw, tmp_path / "odd.qcow2")
