"""Debian's headless chromium for tests: load a page, collect its console messages, take a
screenshot, and decode the PNG (no imaging library: zlib and the PNG filters, as the PNG
specification defines them, section 9)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",  # root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


@dataclass
class Loaded:
    console: list[str]  # the page's console messages (errors, warnings, logs)
    png: bytes


def load(page: Path, size: tuple[int, int] = (1200, 1600)) -> Loaded:
    """The page loaded in a fresh profile: its console messages and a screenshot."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp:
        shot = Path(tmp) / "shot.png"
        done = subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={tmp}/profile",
                f"--window-size={size[0]},{size[1]}",
                f"--screenshot={shot}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
        assert shot.is_file(), done.stderr[-2000:]
        return Loaded(console, shot.read_bytes())


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit truecolour PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw, stride, rows = zlib.decompress(idat), width * bpp, []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filt, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[filt]) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def colours(png: bytes, step: int = 7) -> dict[bytes, int]:
    """How often each colour occurs among every ``step``-th pixel (a sample)."""
    width, _height, rows = png_pixels(png)
    bpp = len(rows[0]) // width
    counts: dict[bytes, int] = {}
    for row in rows[::step]:
        for x in range(0, width, step):
            px = row[x * bpp : x * bpp + 3]
            counts[px] = counts.get(px, 0) + 1
    return counts
