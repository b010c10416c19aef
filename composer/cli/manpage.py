"""The man page, dps-composer(1), generated from the command line itself (every command's help,
usage and options as `-h` prints them), the exit codes and the environment variables; a unit
test keeps the committed ``docs/dps-composer.1`` current. Regenerate it with
``python -m composer.cli.manpage``."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import typer

from composer import __version__
from composer.cli.commands import app
from composer.core.files import regenerate

TARGET = Path(__file__).resolve().parents[2] / "docs" / "dps-composer.1"
EXIT_CODES = (
    ("0", "success; boot: every image PASSed; inspect: the root would be discovered"),
    ("1", "boot: a verdict FAIL; inspect: the root is not discoverable; cache check: damage"),
    ("2", "usage error, a blueprint error or other bad input"),
    (
        "3",
        "the environment or an external tool: a missing or failing tool, firmware, "
        "libguestfs, the network, disk space, a file system that refused",
    ),  # fmt: skip
    ("4", "boot: infrastructure error (the host, not the image, failed the boot)"),
    ("129, 130, 143", "interrupted by SIGHUP, SIGINT, SIGTERM"),
)
ENVIRONMENT = (
    (
        "DPS_COMPOSER_CACHE_DIR",
        "the cache (stage cache, tools tree, packages, keys); "
        "default $XDG_CACHE_HOME/dps-composer or ~/.cache/dps-composer",
    ),  # fmt: skip
    (
        "DPS_COMPOSER_CACHE_MAX",
        "how big the stage cache may grow ('20 GiB'; 'unlimited'); default 10 GiB",
    ),  # fmt: skip
    (
        "DPS_COMPOSER_WORK_DIR",
        "where scratch directories go; default /var/tmp, but a build's goes to /dev/shm when "
        "the machine can spare the memory",
    ),
    (
        "DPS_COMPOSER_CACHE_URL",
        "a stage cache store shared by hosts or workers (an fsspec URL; matrix run --cache-url)",
    ),
    (
        "DPS_COMPOSER_BOOT_TOOLS",
        "where boot takes QEMU, OVMF and swtpm: auto (a cached trixie boot tools tree, else the"
        " host's), tree or host",
    ),
    ("DPS_COMPOSER_ACCEL", "what boot --accel auto means: kvm or tcg (no probe)"),
    ("DPS_COMPOSER_VCPUS", "vCPUs per VM when boot has no --vcpus"),
    ("DPS_COMPOSER_KICKSTART_DIR", "kickstart templates other than the packaged ones"),
    (
        "DPS_COMPOSER_FIXUP_EOF",
        "the here-document delimiter the kickstart %post uses for the "
        "fixup script (rendered into kickstarts; not read by dps-composer)",
    ),  # fmt: skip
    (
        "DPS_COMPOSER_CHECK_LIB, DPS_COMPOSER_CHECK_OUT, DPS_COMPOSER_CHECK_NO_POWEROFF",
        "read by the in-guest check script (composer/data/check/dps-composer-check) only: "
        "source its functions, where to write its line, stay up",
    ),  # fmt: skip
)


def _roff(text: str) -> str:
    """Text safe in roff: backslashes doubled, a leading dot or quote escaped."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + ln) if ln[:1] in (".", "'") else ln for ln in text.split("\n"))


def _command(name: str, cmd: Any, parent: Any) -> list[str]:
    ctx = cmd.make_context(name, [], parent=parent, resilient_parsing=True)
    if hasattr(cmd, "commands"):  # a group: its subcommands
        lines = []
        for sub_name, sub in cmd.commands.items():
            lines += _command(f"{name} {sub_name}", sub, ctx)
        return lines
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines = [".SS " + _roff(f"{name} {usage}"), _roff(inspect.cleandoc(cmd.help or ""))]
    for param in cmd.params:
        record = param.get_help_record(ctx)
        if record is None:
            continue
        lines += [".TP", f"\\fB{_roff(record[0])}\\fR", _roff(record[1])]
    return lines


def text() -> str:
    root: Any = typer.main.get_command(app)
    ctx = root.make_context("dps-composer", [], resilient_parsing=True)
    lines = [
        f'.TH DPS\\-COMPOSER 1 "" "dps-composer {__version__}" "User Commands"',
        ".SH NAME",
        "dps\\-composer \\- " + _roff(inspect.cleandoc(root.help or "").splitlines()[0]),
        ".SH SYNOPSIS",
        "\\fBdps\\-composer\\fR [\\fB\\-\\-version\\fR] [\\fB\\-h\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH COMMANDS",
    ]
    for name, cmd in root.commands.items():
        lines += _command(f"dps-composer {name}", cmd, ctx)
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_CODES:
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines.append(".SH ENVIRONMENT")
    for variable, meaning in ENVIRONMENT:
        lines += [".TP", f"\\fB{_roff(variable)}\\fR", _roff(meaning)]
    lines += [".SH SEE ALSO", "README.md, docs/ in the source tree; \\fBsystemd\\-repart\\fR(8)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    return regenerate(argv, TARGET, text())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
