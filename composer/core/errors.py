"""Errors the CLI turns into one clear message (no traceback) and an exit code.

The exit codes are fixed for the project (README "Exit codes"): 0 success or PASS, 1 a
verdict FAIL (boot) or a root that is not discoverable (inspect), 2 a usage, blueprint or
other input error (``ComposerError`` itself), 3 the environment or an external tool
(``HostError``: a missing tool or firmware, the network, a tool that failed), 4 a boot's
infrastructure (the host, not the image, failed: composer.judge), 129/130/143 interrupted
by SIGHUP/SIGINT/SIGTERM (composer.core.lifetime)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ComposerError(Exception):
    """Base of every error a user can cause or fix; the CLI prints str(err) and exits with
    ``exit_code``: 2 (bad input: an option, a blueprint, a file) unless a subclass says
    otherwise."""

    exit_code = 2


class UsageError(ComposerError):
    """A bad option or combination of options (exit 2)."""


class HostError(ComposerError):
    """The environment failed, not the input: a missing tool or firmware, the network, an
    external tool that exited non-zero, a file system that refused (exit 3)."""

    exit_code = 3


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


class ToolError(HostError):
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


class MissingToolError(HostError):
    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"{tool} not found: install the Debian package '{package}' (scripts/setup.sh)"
        )
