"""Errors the CLI turns into one clear message (no traceback)."""

from __future__ import annotations


class ComposerError(Exception):
    """Base of every error a user can cause or fix; the CLI prints str(err) and exits 1."""

    exit_code = 1


class BlueprintError(ComposerError):
    """Bad blueprint input: names the file, the line and the dotted key path."""

    exit_code = 2

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


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
