"""`dps-composer inspect IMAGE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from composer.cli.common import (
    JsonFile,
    JsonStyle,
    check_report_target,
    guard,
    json_text,
    out,
    print_json,
    say,
)
from composer.core.files import atomic_write
from composer.inspect.image import inspect_image
from composer.inspect.view import render


def inspect(
    image: Annotated[Path, typer.Argument(help="Disk image: raw, qcow2, vmdk, vhdx, vhd")],
    json_style: JsonStyle = None,
    json_file: JsonFile = None,
    arch: Annotated[
        str | None, typer.Option(help="Architecture to judge for (default: the image's)")
    ] = None,
) -> None:
    """Report what IMAGE is without booting it: GPT, DPS types, flags, file systems, UKIs,
    signatures, os-release, and what would keep it from auto-discovering its root.
    Exits 0 when the root would be discovered, 1 when not."""
    with guard():
        if json_file is not None:
            check_report_target(json_file, "--json-file")
        report = inspect_image(image, arch)
        if json_file is not None:
            atomic_write(json_file, json_text(report.to_dict()))
    if json_style:
        print_json(report.to_dict(), json_style)
    else:
        for line in render(report):
            say(line, console=out)
    raise typer.Exit(0 if report.discovery and report.discovery.ok else 1)
