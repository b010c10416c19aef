"""Quoting for kickstart files: no blueprint value can start a command, a section or shell code.

pykickstart (and so anaconda) splits the file into lines with str.splitlines() and each
command line with shlex.split(posix=True); %post bodies are handed to /bin/sh. A value that
survives :func:`checked` holds no character that splitlines() or a shell treats as a line end,
and :func:`quote` makes it one shlex/sh word that reads back exactly as it was.
"""

from __future__ import annotations

import shlex
import unicodedata

from composer.core.errors import ComposerError


class KickstartError(ComposerError):
    """A blueprint value that a kickstart cannot carry, or a kickstart pykickstart rejects."""

    exit_code = 2


class Verbatim(str):
    """Template text that is emitted as it is (script bodies, numbers): never blueprint input."""

    __slots__ = ()


def _breaks_line(ch: str) -> bool:
    return len(f"a{ch}b".splitlines()) > 1 or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def checked(key: str, value: str) -> str:
    """``value`` if a kickstart line can hold it; else a KickstartError naming ``key``."""
    bad = next((ch for ch in value if _breaks_line(ch)), None)
    if bad is not None:
        raise KickstartError(
            f"{key}: {value[:40]!r} holds the control character {bad!r}; a kickstart line "
            "cannot carry it (it would end the line and could start a command or a section)"
        )
    return value


def word(key: str, value: str) -> str:
    """A value that must stand alone as a positional argument: also no leading '-'."""
    checked(key, value)
    if not value or value.startswith("-"):
        raise KickstartError(f"{key}: {value!r} cannot be a kickstart argument (empty or '-…')")
    return value


def quote(value: object) -> str:
    """jinja2 finalize: every {{ value }} becomes one shell/shlex word, unless Verbatim."""
    if isinstance(value, Verbatim):
        return str(value)
    if isinstance(value, bool) or value is None:
        raise KickstartError(f"template bug: {value!r} reached the kickstart unformatted")
    if isinstance(value, int):
        return str(value)
    text = checked("value", str(value))
    return shlex.quote(text)


def comment(value: str) -> Verbatim:
    """Free text for a '#' comment line: control characters shown as escapes, never run."""
    shown = "".join(
        ch.encode("unicode_escape").decode() if _breaks_line(ch) else ch for ch in value
    )
    return Verbatim(shown)
