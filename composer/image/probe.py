"""What is in a partition, from its first bytes: file system type, UUID and label by their
on-disk superblocks (the same magic numbers blkid uses). Pure reads, no tools, no mounts."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import BinaryIO

PROBE_SIZE = 0x10200  # covers the btrfs superblock at 64 KiB


@dataclass(frozen=True)
class FsInfo:
    type: str  # ext4, ext3, ext2, vfat, xfs, btrfs, swap, squashfs, erofs, crypto_LUKS, ...
    uuid: str | None = None
    label: str | None = None


def _text(raw: bytes) -> str | None:
    value = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
    return value or None


def _ext(sb: bytes) -> FsInfo:
    compat, incompat = struct.unpack_from("<II", sb, 0x5C)
    kind = "ext4" if incompat & (0x40 | 0x80 | 0x200) else "ext3" if compat & 0x4 else "ext2"
    return FsInfo(kind, str(uuid.UUID(bytes=sb[0x68:0x78])), _text(sb[0x78:0x88]))


def _fat(bs: bytes) -> FsInfo | None:
    if bs[510:512] != b"\x55\xaa":
        return None
    if bs[0x52:0x5A] == b"FAT32   ":
        serial, label = bs[0x43:0x47], bs[0x47:0x52]
    elif bs[0x36:0x3B] in (b"FAT12", b"FAT16"):
        serial, label = bs[0x27:0x2B], bs[0x2B:0x36]
    else:
        return None
    (num,) = struct.unpack("<I", serial)
    name = _text(label)
    return FsInfo(
        "vfat", f"{num >> 16:04X}-{num & 0xFFFF:04X}", None if name == "NO NAME" else name
    )


def probe_bytes(head: bytes) -> FsInfo | None:
    """The file system whose superblock starts ``head`` (the partition's first bytes)."""
    head = head.ljust(PROBE_SIZE, b"\0")
    if head[0x438:0x43A] == b"\x53\xef":
        return _ext(head[0x400:0x800])
    if head[:4] == b"XFSB":
        return FsInfo("xfs", str(uuid.UUID(bytes=head[32:48])), _text(head[108:120]))
    if head[0x10040:0x10048] == b"_BHRfS_M":
        sb = head[0x10000:]
        return FsInfo("btrfs", str(uuid.UUID(bytes=sb[0x20:0x30])), _text(sb[0x12B:0x22B]))
    for page in (4096, 8192, 16384, 65536):
        if head[page - 10 : page] in (b"SWAPSPACE2", b"SWAP-SPACE"):
            return FsInfo("swap", str(uuid.UUID(bytes=head[0x40C:0x41C])), _text(head[0x41C:0x42C]))
    if head[:6] == b"LUKS\xba\xbe":
        return FsInfo("crypto_LUKS", _text(head[168:208]), None)
    if head[:4] == b"hsqs":
        return FsInfo("squashfs")
    if head[1024:1028] == b"\xe2\xe1\xf5\xe0":
        return FsInfo("erofs", str(uuid.UUID(bytes=head[1024 + 0x30 : 1024 + 0x40])))
    if head[:8] == b"verity\0\0":
        return FsInfo("DM_verity_hash")
    return _fat(head[:512])


def probe(fh: BinaryIO, offset: int, size: int) -> FsInfo | None:
    fh.seek(offset)
    return probe_bytes(fh.read(min(PROBE_SIZE, size)))
