"""Errors the CLI turns into one clear message (no traceback)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ComposerError(Exception):
    """Base of every error a user can cause or fix; the CLI prints str(err) and exits 1."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One bad blueprint key and what is wrong with it (``line`` once it is located)."""

    key: str  # dotted path: customizations.user[0].groups[1]
    message: str
    line: int | None = None


class BlueprintError(ComposerError):
    """Bad blueprint input: names the file, the line and the dotted key path of every problem
    (``also``: the others, each with its own line and reason)."""

    exit_code = 2

    def __init__(
        self,
        file: str,
        line: int | None,
        key: str,
        message: str,
        also: Sequence[Problem] = (),
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        self.problems = (Problem(key, message, line), *also)
        super().__init__("\n".join(_located(file, p) for p in self.problems))


def _located(file: str, p: Problem) -> str:
    where = f"{file}:{p.line}" if p.line else file
    return f"{where}: {p.key}: {p.message}" if p.key else f"{where}: {p.message}"


class KeyedProblems(ComposerError):
    """Blueprint problems found where the blueprint's text is not at hand (after package
    resolution): keys and reasons; the CLI adds the file and lines
    (composer.blueprint.locate)."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(_located("blueprint", p) for p in self.problems))


class ToolError(ComposerError):
    """An external tool failed: names the tool, the command line and the tail of its stderr."""

    def __init__(self, tool: str, argv: list[str], returncode: int, stderr: str) -> None:
        self.tool = tool
        self.argv = argv
        self.returncode = returncode
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        self.stderr_tail = tail
        cmd = " ".join(argv)
        if len(cmd) > 400:
            cmd = cmd[:400] + " …"
        super().__init__(
            f"{tool} failed (exit {returncode})\n  command: {cmd}\n"
            + ("  stderr:\n    " + tail.replace("\n", "\n    ") if tail else "  (no stderr)")
        )


class MissingToolError(ComposerError):
    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"{tool} not found: install the Debian package '{package}' (scripts/setup.sh)"
        )
