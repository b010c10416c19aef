"""What every command shares: the two consoles, the shared options and the one error boundary.

Messages that carry user values (file names, blueprint values, tool output) are printed
literally: never parsed as rich markup, never re-wrapped, so ``[/x]`` or ``[link=…]`` in a
value reads back exactly as it was.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from composer.core import paths
from composer.core.errors import ComposerError, HostError
from composer.core.files import OutputPathError, check_target
from composer.core.lifetime import Interrupted
from composer.image.formats import disk_image_kind

# --cache-dir DIR, or $DPS_COMPOSER_CACHE_DIR
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar=paths.CACHE_DIR_ENV, help="Cache directory"),
]


# --json=pretty|short, as systemd's --json=: the machine-readable result on stdout
class JsonFormat(StrEnum):
    pretty = "pretty"
    short = "short"


JsonStyle = Annotated[
    JsonFormat | None,
    typer.Option(
        "--json",
        help="Print the result as JSON on stdout: pretty (indented) or short (one line); "
        "human-readable lines go to stderr",
    ),
]
# --json-file FILE: the same JSON written to a file
JsonFile = Annotated[
    Path | None,
    typer.Option("--json-file", help="Write the result as JSON to FILE (never a disk image)"),
]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def say(text: str, style: str = "", *, console: Console = err) -> None:
    """Print ``text`` literally (no markup), optionally in one style."""
    console.print(Text(text, style=style))


def wrote(path: object, *, console: Console = out) -> None:
    console.print(Text.assemble(("wrote", "green"), " ", str(path)))


def json_text(data: Any, style: str | None = "pretty") -> str:
    """``data`` as JSON: ``pretty`` indented, ``short`` on one line (systemd's --json=)."""
    if style == "short":
        return json.dumps(data, separators=(",", ":")) + "\n"
    return json.dumps(data, indent=2) + "\n"


def print_json(data: Any, style: str | None) -> None:
    """The one machine-readable result of a command, alone on stdout."""
    sys.stdout.write(json_text(data, style))
    sys.stdout.flush()


def human(json_style: JsonFormat | None) -> Console:
    """Where a command's human-readable result goes: stdout, or stderr when stdout carries
    its JSON."""
    return err if json_style else out


def check_report_target(path: Path, option: str) -> None:
    """A report file (``--json-file``, ``--junit``) may replace an earlier report, never a
    disk image (``boot --json-file a.qcow2 b.qcow2`` must not destroy a.qcow2) nor anything
    but a regular file."""
    check_target(path)
    kind = disk_image_kind(path)
    if kind is not None:
        raise OutputPathError(
            f"{option} {path}: the file exists and is a {kind}; refusing to overwrite it "
            "with a report (name another file)"
        )


class FileSystemError(HostError):
    """The file system refused (permissions, a vanished directory): environment, exit 3."""


def _fail(exc: ComposerError) -> NoReturn:
    err.print(Text.assemble(("error:", "bold red"), " ", str(exc)))
    _notes(exc)
    raise typer.Exit(exc.exit_code)


def _notes(exc: BaseException) -> None:
    """What was added on the way out (``add_note``): where a failed build's log went."""
    for note in getattr(exc, "__notes__", ()):
        say(str(note))


@contextlib.contextmanager
def guard(interrupted: str = "interrupted", *, file_system: str = "") -> Iterator[None]:
    """The error boundary: a ComposerError becomes its message and exit code; Ctrl-C,
    SIGTERM and SIGHUP a one-line note and 130, 143, 129 (after every clean-up on the way out
    ran). With ``file_system`` (what the command works on, e.g. "stage cache"), the file
    system's refusals are one line each too (exit 3). Anything else is a bug and keeps its
    traceback."""
    try:
        yield
    except ComposerError as exc:
        _fail(exc)
    except OSError as exc:
        if not file_system:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(FileSystemError(f"{file_system}: {where}{exc.strerror or exc}"))
    except KeyboardInterrupt as exc:
        say(f"{interrupted} (SIGINT)", "yellow")
        _notes(exc)
        raise typer.Exit(130) from None
    except Interrupted as exc:
        say(f"{interrupted} ({exc})", "yellow")
        _notes(exc)
        raise typer.Exit(exc.exit_code) from None
