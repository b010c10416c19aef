"""`dps-composer doctor`: can this host build and boot images; what to install or set."""

from __future__ import annotations

import typer
from rich.text import Text

from composer.cli.common import JsonStyle, guard, human, print_json
from composer.doctor.checks import Finding, run_checks

_MARK = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}


def doctor(json_style: JsonStyle = None) -> None:
    """Check the host: tools, firmware descriptors, swtpm, libguestfs, free space, and a fresh
    KVM probe (not the cached one). Prints what to install or set; exits 3 when a build or
    boot would fail here, 0 otherwise (warnings included)."""
    console = human(json_style)

    def show(f: Finding) -> None:
        console.print(Text.assemble(_MARK[f.status], f" {f.check}: {f.detail}"))
        if f.fix:
            console.print(Text(f"      fix: {f.fix}", style="dim"))

    with guard(file_system="doctor"):
        findings = run_checks(show)
    if json_style:
        print_json([f.to_dict() for f in findings], json_style)
    raise typer.Exit(3 if any(f.status == "fail" for f in findings) else 0)
