"""The blueprint as text: reading the file safely, finding the line of a key, and the depth
limit (tomllib and the validators recurse; a hostile file must not make them overflow)."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from composer.blueprint.lines import dotted, key_lines, line_of
from composer.core.errors import BlueprintError, Problem
from composer.core.files import file_kind

# A blueprint is a few kilobytes (files' data and certificates included); nesting is at
# most seven levels (customizations.disk.partitions[i].logical_volumes[j].name).
MAX_BLUEPRINT_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32
_TOO_BIG = f"larger than {MAX_BLUEPRINT_BYTES // 1024**2} MiB: not a blueprint"
_TOO_DEEP = f"nested too deep (more than {MAX_DEPTH} levels of tables and arrays)"


def read_blueprint(path: Path) -> str:
    """The text of the blueprint file ``path``: a regular file (a FIFO would block, a device
    never ends) of at most MAX_BLUEPRINT_BYTES, in UTF-8."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise BlueprintError(
                str(path), None, "", f"is {file_kind(st.st_mode)}, not a regular file"
            )
        if st.st_size > MAX_BLUEPRINT_BYTES:
            raise BlueprintError(str(path), None, "", _TOO_BIG)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped since the stat
                raise BlueprintError(str(path), None, "", "is not a regular file")
            raw = fh.read(MAX_BLUEPRINT_BYTES + 1)
    except OSError as exc:
        raise BlueprintError(str(path), None, "", f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_BLUEPRINT_BYTES:
        raise BlueprintError(str(path), None, "", _TOO_BIG)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BlueprintError(str(path), None, "", "not UTF-8 text") from None


def located(file: str, text: str, problems: list[Problem]) -> BlueprintError:
    """A BlueprintError for ``problems`` (keys without lines), each with its line in ``text``;
    the same key is named once."""
    seen: dict[tuple[str, str], Problem] = {}
    for p in problems:
        line = line_for(text, _parse_dotted(p.key)) if text else None
        seen.setdefault((p.key, p.message), Problem(p.key, p.message, line))
    first, *others = sorted(seen.values(), key=lambda p: p.line or 0)
    return BlueprintError(file, first.line, first.key, first.message, others)


def _parse_dotted(key: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return tuple(out)


def line_for(text: str, loc: tuple[str | int, ...]) -> int:
    """The line of ``loc``, else of the first key below it ([a.b.c] for a.b), else 1."""
    found = line_of(text, loc)
    if found is not None:
        return found
    deeper = [n for path, n in key_lines(text) if path[: len(loc)] == tuple(loc)]
    return min(deeper) if deeper else 1


def check_depth(data: dict[str, Any], text: str, file: str) -> None:
    """Tables and arrays nested deeper than MAX_DEPTH: a clear error, before any recursive
    code (validation, _tuplify) meets them."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            raise BlueprintError(
                file, line_for(text, loc[:MAX_DEPTH]), dotted(loc[:MAX_DEPTH]), _TOO_DEEP
            )
        if isinstance(value, dict):
            stack += [(v, (*loc, k)) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, (*loc, i)) for i, v in enumerate(value)]


def deep_line(text: str) -> int:
    """The line where brackets and braces (outside strings) first nest deeper than
    MAX_DEPTH; 1 if that cannot be told."""
    depth, quote = 0, ""
    for lineno, line in enumerate(text.split("\n"), start=1):
        for ch in line:
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return lineno
            elif ch in "]}":
                depth -= 1
        quote = ""
    return 1


def too_deep(text: str, file: str) -> BlueprintError:
    """The depth error for text tomllib could not even parse (it recursed too deep)."""
    line = deep_line(text)
    keys = [path for path, n in key_lines(text) if n <= line]
    return BlueprintError(file, line, dotted(keys[-1]) if keys else "", _TOO_DEEP)


def parse_toml(text: str, file: str) -> dict[str, Any]:
    """The TOML document ``text`` (of ``file``), not deeper than the composer reads: a syntax
    error or a too-deep document is a BlueprintError naming the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise BlueprintError(
            file, int(m.group(1)) if m else 1, "", f"not valid TOML: {exc}"
        ) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise too_deep(text, file) from None
    check_depth(data, text, file)
    return data
