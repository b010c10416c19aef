"""Read an initrd: its (compressed) newc cpio archive, as file names."""

from __future__ import annotations

from pathlib import Path

from composer.core import tools
from composer.image.formats import compression

_TRAILER = "TRAILER!!!"


def cpio_names(data: bytes) -> list[str]:
    """Member names of concatenated newc ("070701"/"070702") archives; zero padding between
    archives is skipped."""
    names: list[str] = []
    pos = 0
    while pos + 110 <= len(data):
        if data[pos : pos + 4] == b"\0\0\0\0":
            pos += 4
            continue
        magic = data[pos : pos + 6]
        if magic not in (b"070701", b"070702"):
            raise ValueError(f"not a newc cpio archive at offset {pos}")
        filesize = int(data[pos + 54 : pos + 62], 16)
        namesize = int(data[pos + 94 : pos + 102], 16)
        name = data[pos + 110 : pos + 110 + namesize - 1].decode(errors="replace")
        pos = (pos + 110 + namesize + 3) & ~3
        pos = (pos + filesize + 3) & ~3
        if name != _TRAILER:
            names.append(name)
    return names


def decompress(data: bytes) -> bytes:
    kind = compression(data)
    return tools.run([kind, "-dc"], input=data, capture=True).stdout if kind else data


def names(initrd: Path) -> list[str]:
    return cpio_names(decompress(initrd.read_bytes()))


def module_names(initrd: Path) -> list[str]:
    """The kernel modules (.ko, compressed or not) an initrd holds."""
    return sorted(n for n in names(initrd) if ".ko" in n.rsplit("/", 1)[-1])
