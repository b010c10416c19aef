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


def inspect(
    image: Annotated[Path, typer.Argument(help="Disk image: raw, qcow2, vmdk, vhdx, vhd")],
    json_style: JsonStyle = None,
    json_file: JsonFile = None,
    svg: Annotated[
        Path | None,
        typer.Option("--svg", help="Write the partition map, drawn to scale, as SVG to FILE"),
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="Architecture to judge for (default: the image's)")
    ] = None,
) -> None:
    """Report what IMAGE is without booting it: GPT, DPS types, flags, file systems, UKIs,
    signatures, os-release, and what would keep it from auto-discovering its root.
    Exits 0 when the root would be discovered, 1 when not."""
    from composer.inspect.image import inspect_image  # when an image is inspected
    from composer.inspect.partition_map import from_inspect, partition_svg
    from composer.inspect.view import render

    with guard():
        for target, option in ((json_file, "--json-file"), (svg, "--svg")):
            if target is not None:
                check_report_target(target, option)
        report = inspect_image(image, arch)
        if json_file is not None:
            atomic_write(json_file, json_text(report.to_dict()))
        if svg is not None:
            size, parts = from_inspect(report)
            atomic_write(svg, partition_svg(size, parts, f"{image.name}: {len(parts)} partitions"))
    if json_style:
        print_json(report.to_dict(), json_style)
    else:
        for line in render(report):
            say(line, console=out)
    raise typer.Exit(0 if report.discovery and report.discovery.ok else 1)
