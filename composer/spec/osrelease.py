"""os-release files (os-release(5)): newline-separated ``KEY=VALUE`` assignments in a shell
compatible syntax; values may be enclosed in single or double quotes and use backslash
escapes; lines starting with ``#`` are comments. Read in UKIs' ``.osrel`` sections, image
trees and running systems."""

from __future__ import annotations

import re


def parse(text: str) -> dict[str, str]:
    """Every assignment of an os-release text, values unquoted and unescaped."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = _unquote(value.strip())
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def value(text: str, key: str) -> str | None:
    """The value of ``key`` in os-release text, None when it has none."""
    return parse(text).get(key)


def os_id(text: str | None) -> str:
    """The ``ID`` of the system, "linux" when it names none (os-release(5)'s default)."""
    return parse(text or "").get("ID") or "linux"
