"""TOML text from a blueprint's data, for the blueprint of a matrix cell: the base blueprint
with the cell's overrides, written beside the cell's outputs so that `dps-composer build`
reads it like any blueprint (and a user can rebuild the cell by hand).

Only what ``tomllib`` gives back is written (tables, arrays, strings, integers, floats,
booleans); the text is read back and compared, so a value this writer cannot express is an
error, never a silently different blueprint.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


class NotExpressible(ValueError):
    """A value that this writer cannot put into TOML unchanged."""


def _string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and every control character (DEL too,
    which JSON leaves as it is and TOML refuses) escaped."""
    return '"' + _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", value) + '"'


def _key(name: str) -> str:
    return name if _BARE.match(name) else _string(name)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotExpressible(f"{value!r}")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + "}"
    raise NotExpressible(f"a {type(value).__name__}")


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, list | tuple) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _table(data: dict[str, Any], path: list[str], lines: list[str]) -> None:
    plain = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v)}
    for k, v in plain.items():
        lines.append(f"{_key(k)} = {_scalar(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append("")
            lines.append("[" + ".".join(_key(p) for p in [*path, k]) + "]")
            _table(v, [*path, k], lines)
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append("[[" + ".".join(_key(p) for p in [*path, k]) + "]]")
                _table(item, [*path, k], lines)


def dumps(data: dict[str, Any]) -> str:
    """``data`` as TOML text that ``tomllib`` reads back as ``data``."""
    lines: list[str] = []
    _table(data, [], lines)
    text = "\n".join(lines).lstrip("\n") + "\n"
    try:
        same = tomllib.loads(text) == plain(data)
    except tomllib.TOMLDecodeError as exc:
        raise NotExpressible(f"the text does not read back: {exc}") from None
    if not same:
        raise NotExpressible("the data does not read back unchanged")
    return text


def plain(value: Any) -> Any:
    """``value`` with tuples as lists and mappings as dicts: what TOML reads back."""
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value
