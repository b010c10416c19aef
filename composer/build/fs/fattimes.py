"""Fixed timestamps in a FAT file system image, for bit-identical builds.

mtools stamps the directories it creates (and mkfs.vfat the volume label) with the current
time, whatever SOURCE_DATE_EPOCH says. This walks every directory of a FAT12/16/32 image
from the root, following cluster chains, and sets each entry's creation, access and
modification times to one instant.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import BinaryIO

ENTRY = 32
ATTR_LFN = 0x0F
ATTR_DIR = 0x10


def dos_datetime(epoch: int) -> tuple[int, int]:
    """(date, time) words of the DOS format for ``epoch`` (UTC, 2-second steps, 1980-2107)."""
    t = time.gmtime(max(epoch, 315532800))  # 1980-01-01, the first DOS date
    date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    clock = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    return date, clock


class _Fat:
    def __init__(self, fh: BinaryIO, boot: bytes) -> None:
        self.fh = fh
        self.sector = struct.unpack_from("<H", boot, 11)[0]
        self.per_cluster = boot[13]
        reserved = struct.unpack_from("<H", boot, 14)[0]
        fats = boot[16]
        self.root_entries = struct.unpack_from("<H", boot, 17)[0]
        total = struct.unpack_from("<H", boot, 19)[0] or struct.unpack_from("<I", boot, 32)[0]
        fat_sectors = struct.unpack_from("<H", boot, 22)[0] or struct.unpack_from("<I", boot, 36)[0]
        self.fat_offset = reserved * self.sector
        root_sectors = (self.root_entries * ENTRY + self.sector - 1) // self.sector
        self.root_offset = (reserved + fats * fat_sectors) * self.sector  # FAT12/16 only
        self.data_offset = self.root_offset + root_sectors * self.sector
        clusters = (total - reserved - fats * fat_sectors - root_sectors) // self.per_cluster
        self.bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
        self.root_cluster = struct.unpack_from("<I", boot, 44)[0] if self.bits == 32 else 0
        self.cluster_size = self.sector * self.per_cluster

    def _read(self, offset: int, size: int) -> bytes:
        self.fh.seek(offset)
        return self.fh.read(size)

    def next_cluster(self, cluster: int) -> int | None:
        if self.bits == 32:
            value = struct.unpack("<I", self._read(self.fat_offset + cluster * 4, 4))[0]
            value &= 0x0FFFFFFF
            end = 0x0FFFFFF8
        elif self.bits == 16:
            value = struct.unpack("<H", self._read(self.fat_offset + cluster * 2, 2))[0]
            end = 0xFFF8
        else:
            pair = struct.unpack("<H", self._read(self.fat_offset + cluster * 3 // 2, 2))[0]
            value = pair >> 4 if cluster & 1 else pair & 0xFFF
            end = 0xFF8
        return None if value >= end or value < 2 else value

    def chain(self, cluster: int) -> list[tuple[int, int]]:
        """(offset, size) of every cluster of the chain starting at ``cluster``."""
        spans: list[tuple[int, int]] = []
        seen: set[int] = set()
        current: int | None = cluster
        while current is not None and current not in seen:
            seen.add(current)
            spans.append((self.data_offset + (current - 2) * self.cluster_size, self.cluster_size))
            current = self.next_cluster(current)
        return spans


def fix_fat_times(image: Path, epoch: int, offset: int = 0) -> int:
    """Set every directory entry's timestamps in the FAT file system at ``offset`` of
    ``image`` to ``epoch``; returns the number of entries changed."""
    date, clock = dos_datetime(epoch)
    changed = 0
    with open(image, "r+b") as fh:
        fh.seek(offset)
        fat = _Fat(fh, fh.read(512))
        fat.fat_offset += offset
        fat.root_offset += offset
        fat.data_offset += offset
        if fat.bits == 32:
            todo = [fat.chain(fat.root_cluster)]
        else:
            todo = [[(fat.root_offset, fat.root_entries * ENTRY)]]
        while todo:
            for span_offset, span_size in todo.pop():
                fh.seek(span_offset)
                block = bytearray(fh.read(span_size))
                for pos in range(0, len(block), ENTRY):
                    if block[pos] == 0:  # no more entries in this directory
                        break
                    attr = block[pos + 11]
                    if block[pos] == 0xE5 or attr == ATTR_LFN:
                        continue
                    block[pos + 13] = 0  # creation time, tenths of a second
                    struct.pack_into(
                        "<HHH", block, pos + 14, clock, date, date
                    )  # ctime cdate adate
                    struct.pack_into("<HH", block, pos + 22, clock, date)  # mtime mdate
                    changed += 1
                    name = bytes(block[pos : pos + 11])
                    if attr & ATTR_DIR and name not in (b".          ", b"..         "):
                        hi, lo = (
                            struct.unpack_from("<H", block, pos + 20)[0],
                            struct.unpack_from("<H", block, pos + 26)[0],
                        )
                        first = (hi << 16 | lo) if fat.bits == 32 else lo
                        if first >= 2:
                            todo.append(fat.chain(first))
                fh.seek(span_offset)
                fh.write(block)
    return changed
