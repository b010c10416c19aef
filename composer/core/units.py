"""Human sizes ("4 GiB", "512M", 1048576) and durations ("10 min", "90s", 600)."""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_DURATION_UNITS = {
    "": 1,
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "weeks": 7 * 86400,
}
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

MiB = 1024**2
GiB = 1024**3


# Every size ends up as a file offset (off_t) or a GPT field: 2^63 bytes and more cannot be.
SIZE_LIMIT = 2**63


def parse_size(value: object) -> int:
    """Bytes from an int or a string like "4 GiB", "20 GB", "512M".

    osbuild's units (osbuild/images pkg/datasizes/parse.go: kB, KiB, MB, MiB, GB, GiB, TB,
    TiB, or a plain number of bytes; fractions only with a unit, rounded to the nearest byte)
    mean the same here; the composer also takes them in lower case and K, M, G, T as binary
    units."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '4 GiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return _bounded(value, str(value))
    if not isinstance(value, str):
        raise ValueError("a size must be a number of bytes or a string like '4 GiB'")
    m = _NUMBER.match(value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size; write e.g. '4 GiB', '512 MiB', '20 GB'")
    if "." in m.group(1) and _SIZE_UNITS[unit] == 1:
        raise ValueError(f"{value!r}: a number of bytes is a whole number")
    return _bounded(round(float(m.group(1)) * _SIZE_UNITS[unit]), value)


def _bounded(n: int, shown: str) -> int:
    if n >= SIZE_LIMIT:
        raise ValueError(f"{shown!r} is too large: sizes must be below 2^63 bytes (8 EiB)")
    return n


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like "10 min", "90s", "1h"."""
    if isinstance(value, bool):
        raise ValueError("a duration must be seconds or a string like '10 min'")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("a duration must be positive")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration must be seconds or a string like '10 min'")
    m = _NUMBER.match(value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _DURATION_UNITS:
        raise ValueError(f"{value!r} is not a duration; write e.g. '10 min', '90 s', '1 h'")
    seconds = float(m.group(1)) * _DURATION_UNITS[unit]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def human_size(n: int) -> str:
    for unit, factor in (("EiB", 1024**6), ("PiB", 1024**5), ("TiB", 1024**4), ("GiB", GiB),
                         ("MiB", MiB), ("KiB", 1024)):  # fmt: skip
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def align_up(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment
