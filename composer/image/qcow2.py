"""A compressed qcow2 (version 3) written from a raw disk: every core compresses, the file is
written in guest order, and its bytes depend only on the raw disk's bytes and the compressor.

``qemu-img convert -c`` compresses one cluster after another on one thread: it writes
compressed clusters in guest order, and with ``-W`` (out of order, in parallel) the file's
layout changes from run to run, so images would no longer be reproducible. This writer
compresses batches of clusters in threads (zstandard and zlib release the GIL), keeps the
guest order when it writes, and places the metadata after the data.

The format is QEMU's docs/interop/qcow2.txt: 64 KiB clusters, 16-bit refcounts, no backing
file, no snapshots. The layout:

- cluster 0: the header (version 3, 112 bytes, the compression type) and its end marker;
- from cluster 1: the data clusters, in guest order. A compressed cluster is packed right
  after the one before (a byte offset, as qemu-img packs them); one that does not compress to
  less than a cluster is stored whole at the next cluster boundary. Clusters that are all
  zeros (or holes in the raw file) are not stored: without a backing file they read as zeros;
- then the L2 tables (one per 512 MiB of guest space that holds data), the L1 table, the
  refcount table and the refcount blocks, each starting on a cluster boundary.

Compression follows QEMU's block/qcow2-threads.c: zstd at its default level, one frame per
cluster; zlib as raw deflate with a 4 KiB window (window bits -12), which QEMU's inflate needs;
a cluster whose compressed form would not fit in ``cluster size - 1`` bytes is stored whole.
The result is checked by ``qemu-img check`` (composer/build/outputs.py) like any other qcow2.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import zstandard

from composer.core.files import next_data

CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS
REFCOUNT_ORDER = 4  # 16-bit refcounts, QEMU's default
REFCOUNTS_PER_BLOCK = CLUSTER * 8 >> REFCOUNT_ORDER
L2_ENTRIES = CLUSTER // 8
HEADER_LENGTH = 112
COMPRESSED = 1 << 62  # L2 entry: a compressed cluster
COPIED = 1 << 63  # L1/L2 entry: refcount exactly 1
CSIZE_SHIFT = 62 - (CLUSTER_BITS - 8)  # compressed descriptor: additional sectors from here
INCOMPAT_COMPRESSION_TYPE = 1 << 3
COMPRESSION_TYPES = {"zlib": 0, "zstd": 1}
BATCH = 64  # clusters per task: 4 MiB read and compressed at a time
ZERO = bytes(CLUSTER)

Compressor = Callable[[bytes], bytes]


def _compressor(kind: str) -> Compressor:
    """One cluster's compressed form, as QEMU's qcow2 driver makes and reads it."""
    if kind == "zstd":
        return zstandard.ZstdCompressor(level=3).compress
    if kind == "zlib":

        def deflate(data: bytes) -> bytes:
            c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -12, 9)
            return c.compress(data) + c.flush()

        return deflate
    raise ValueError(f"qcow2 compression {kind!r}: zstd or zlib")


def _ceil(n: int, unit: int) -> int:
    """How many ``unit``s hold ``n``."""
    return -(-n // unit)


# What one task made of up to BATCH guest clusters: the first one's index and, per cluster,
# None (all zeros), (True, its compressed form) or (False, the whole cluster).
_Batch = tuple[int, list[tuple[bool, bytes] | None]]


def _batches(fd: int, size: int, kind: str, workers: int) -> Iterator[_Batch]:
    """Every batch of guest clusters that holds data, compressed in ``workers`` threads and
    yielded in guest order; at most 2 × workers batches are in flight."""
    local = threading.local()

    def work(first: int, count: int) -> _Batch:
        compress: Compressor | None = getattr(local, "compress", None)
        if compress is None:
            compress = local.compress = _compressor(kind)
        data = os.pread(fd, count * CLUSTER, first * CLUSTER)
        done: list[tuple[bool, bytes] | None] = []
        for i in range(count):
            chunk = data[i * CLUSTER : (i + 1) * CLUSTER]
            if len(chunk) < CLUSTER:  # the last cluster of a disk that is not whole clusters
                chunk = chunk + bytes(CLUSTER - len(chunk))
            if chunk == ZERO:
                done.append(None)
                continue
            packed = compress(chunk)
            done.append((True, packed) if len(packed) < CLUSTER else (False, chunk))
        return first, done

    clusters = _ceil(size, CLUSTER)
    pending: deque[Future[_Batch]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qcow2") as pool:
        for first in range(0, clusters, BATCH):
            count = min(BATCH, clusters - first)
            if next_data(fd, first * CLUSTER, size) >= (first + count) * CLUSTER:
                continue  # a hole: nothing to read
            pending.append(pool.submit(work, first, count))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _ref(counts: list[int], first: int, last: int) -> None:
    """One more reference to host clusters first..last (inclusive)."""
    if len(counts) <= last:
        counts.extend([0] * (last + 1 - len(counts)))
    for c in range(first, last + 1):
        counts[c] += 1


def _refcount_layout(before: int) -> tuple[int, int]:
    """The refcount table's clusters and the refcount blocks that cover ``before`` host
    clusters and themselves (they come last in the file): the least that does."""
    table = blocks = 0
    while True:
        need_blocks = _ceil(before + table + blocks, REFCOUNTS_PER_BLOCK)
        need_table = _ceil(need_blocks * 8, CLUSTER)
        if (need_table, need_blocks) == (table, blocks):
            return table, blocks
        table, blocks = need_table, need_blocks


def write_qcow2(raw: Path, dest: Path, compression: str = "zstd", workers: int = 0) -> None:
    """Write ``dest``, a compressed qcow2 of the raw disk ``raw`` (``compression`` zstd or
    zlib), with ``workers`` compressing threads (0: one per CPU this process may use)."""
    _compressor(compression)  # refuse an unknown kind before any file is made
    workers = workers or len(os.sched_getaffinity(0))
    refs: list[int] = [1]  # host cluster 0: the header
    size = raw.stat().st_size
    if size % 512:  # QEMU counts a qcow2's size in 512-byte sectors
        raise ValueError(f"{raw}: {size} bytes is not a whole number of 512-byte sectors")
    l2: dict[int, list[int]] = {}  # L1 index -> its L2 table's entries
    fd = os.open(raw, os.O_RDONLY)
    try:
        with open(dest, "wb") as out:
            pos = CLUSTER
            out.seek(pos)
            for first, clusters in _batches(fd, size, compression, workers):
                for guest, stored in enumerate(clusters, first):
                    if stored is None:
                        continue
                    compressed, data = stored
                    if compressed:
                        end = pos + len(data) - 1
                        sectors = (end >> 9) - (pos >> 9)
                        entry = COMPRESSED | sectors << CSIZE_SHIFT | pos
                        _ref(refs, pos >> CLUSTER_BITS, end >> CLUSTER_BITS)
                    else:
                        pos = _ceil(pos, CLUSTER) * CLUSTER
                        out.seek(pos)
                        entry = COPIED | pos
                        _ref(refs, pos >> CLUSTER_BITS, pos >> CLUSTER_BITS)
                    out.write(data)
                    pos += len(data)
                    table = l2.setdefault(guest // L2_ENTRIES, [0] * L2_ENTRIES)
                    table[guest % L2_ENTRIES] = entry
            _write_metadata(out, pos, size, compression, l2, refs)
    finally:
        os.close(fd)


def _write_metadata(
    out: BinaryIO, pos: int, size: int, compression: str, l2: dict[int, list[int]], refs: list[int]
) -> None:
    """The L2 tables, L1 table, refcount table and blocks after the data (``pos`` is where the
    data ends), then the header."""
    next_cluster = _ceil(pos, CLUSTER)
    l2_offsets: dict[int, int] = {}
    for index in sorted(l2):
        l2_offsets[index] = next_cluster * CLUSTER
        next_cluster += 1
    l1_size = max(1, _ceil(_ceil(size, CLUSTER), L2_ENTRIES))
    l1_offset = next_cluster * CLUSTER
    next_cluster += _ceil(l1_size * 8, CLUSTER)
    table_clusters, blocks = _refcount_layout(next_cluster)
    rt_offset = next_cluster * CLUSTER
    rb_first = next_cluster + table_clusters
    _ref(refs, _ceil(pos, CLUSTER), rb_first + blocks - 1)  # every metadata cluster

    for index, offset in l2_offsets.items():
        out.seek(offset)
        out.write(struct.pack(f">{L2_ENTRIES}Q", *l2[index]))
    l1 = [0] * l1_size
    for index, offset in l2_offsets.items():
        l1[index] = COPIED | offset
    out.seek(l1_offset)
    out.write(struct.pack(f">{l1_size}Q", *l1))
    table = [(rb_first + b) * CLUSTER for b in range(blocks)]
    out.seek(rt_offset)
    out.write(struct.pack(f">{len(table)}Q", *table))
    out.seek(rb_first * CLUSTER)
    padded = refs + [0] * (blocks * REFCOUNTS_PER_BLOCK - len(refs))
    out.write(struct.pack(f">{len(padded)}H", *padded))
    kind = COMPRESSION_TYPES[compression]
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQIIB7x",
        b"QFI\xfb",
        3,
        0,
        0,
        CLUSTER_BITS,
        size,
        0,
        l1_size,
        l1_offset,
        rt_offset,
        table_clusters,
        0,
        0,
        INCOMPAT_COMPRESSION_TYPE if kind else 0,
        0,
        0,
        REFCOUNT_ORDER,
        HEADER_LENGTH,
        kind,
    )
    out.seek(0)
    out.write(header + struct.pack(">II", 0, 0))
