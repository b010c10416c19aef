"""`dps-composer inspect IMAGE`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from composer.cli.common import guard, out, say
from composer.inspect.image import inspect_image
from composer.inspect.view import render


def inspect(
    image: Annotated[Path, typer.Argument(help="Disk image: raw, qcow2, vmdk, vhdx, vhd")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    arch: Annotated[
        str | None, typer.Option(help="Architecture to judge for (default: the image's)")
    ] = None,
) -> None:
    """Report what IMAGE is without booting it: GPT, DPS types, flags, file systems, UKIs,
    signatures, os-release, and what would keep it from auto-discovering its root.
    Exits 0 when the root would be discovered, 1 when not."""
    with guard():
        report = inspect_image(image, arch)
    if json_out:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        for line in render(report):
            say(line, console=out)
    raise typer.Exit(0 if report.discovery and report.discovery.ok else 1)
