"""Find the line of a dotted key path in TOML text (tomllib keeps no positions)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")

Path = tuple[str | int, ...]


def _split_key(raw: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(raw))


def key_lines(text: str) -> list[tuple[Path, int]]:
    """Every table header and key of the document with its full path and 1-based line."""
    found: list[tuple[Path, int]] = []
    table: Path = ()
    aot_count: dict[tuple[str, ...], int] = {}
    in_multiline: str | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header and header.group(1) == header.group(3)[::-1].replace("]", "["):
            parts = _split_key(header.group(2))
            if header.group(1) == "[[":
                idx = aot_count.get(parts, 0)
                aot_count[parts] = idx + 1
                table = (*parts, idx)
            else:
                table = _with_indexes(parts, aot_count)
            found.append((table, lineno))
            continue
        key = _KEY.match(line)
        if key:
            found.append(((*table, *_split_key(key.group(1))), lineno))
            rest = line[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return found


def _with_indexes(parts: tuple[str, ...], aot_count: dict[tuple[str, ...], int]) -> Path:
    """[a.b.c] below [[a.b]] means a.b[last].c."""
    out: list[str | int] = []
    for i, part in enumerate(parts):
        out.append(part)
        prefix = parts[: i + 1]
        if prefix in aot_count and i + 1 < len(parts):
            out.append(aot_count[prefix] - 1)
    return tuple(out)


def line_of(text: str, path: Sequence[str | int]) -> int | None:
    """The line of the longest prefix of ``path`` that the text names; None if none."""
    target = tuple(path)
    best: tuple[int, int] | None = None  # (matched length, line)
    for key_path, lineno in key_lines(text):
        n = _common_prefix(key_path, target)
        if n == 0 or n < len(key_path) and n < len(target):
            continue
        if n < len(key_path):
            continue  # a deeper key than the target does not locate it
        if best is None or n > best[0]:
            best = (n, lineno)
    return best[1] if best else None


def _common_prefix(a: Path, b: Path) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out
