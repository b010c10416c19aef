"""`dps-composer kickstart` and `dps-composer fixup`: installer and existing-image commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from composer.errors import ComposerError

err = Console(stderr=True)


def _fail(exc: ComposerError) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def kickstart(
    blueprint: Annotated[Path, typer.Argument(help="Blueprint TOML file (distro fedora-NN)")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Kickstart file to write (default: stdout)"),
    ] = None,
    uki_repo: Annotated[
        str | None,
        typer.Option("--uki-repo", help="Repository (baseurl) that serves the uki-virt package"),
    ] = None,
) -> None:
    """Render an anaconda kickstart from BLUEPRINT: GPT, UKI, DPS types set in %post.

    The result is parsed by pykickstart for the blueprint's Fedora release, errors fatal.
    """
    from composer.kickstart import render_file

    try:
        text = render_file(blueprint, uki_repo=uki_repo)
    except ComposerError as exc:
        _fail(exc)
    if output is None:
        typer.echo(text, nl=False)
        return
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text)
    tmp.replace(output)
    err.print(f"[green]wrote[/] {output}")


def fixup(
    image: Annotated[
        Path | None, typer.Argument(help="Raw or qcow2 image to fix (or use --running)")
    ] = None,
    running: Annotated[
        bool, typer.Option("--running", help="Fix the system this command runs on")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write a fixed copy here; IMAGE stays")
    ] = None,
    loader: Annotated[
        str, typer.Option(help="keep, systemd-boot, uki-direct or grub2 (default: keep)")
    ] = "keep",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Print what would change; change nothing")
    ] = False,
    install: Annotated[
        Path | None,
        typer.Option("--install", help="A .deb/.rpm (the uki-virt package) to install first"),
    ] = None,
) -> None:
    """Make an installed system or an existing image DPS- and UKI-ready.

    Sets DPS partition types (and the /var UUID), drops the fstab lines and root= arguments
    that discovery makes redundant, and sets up the boot loader. Running it twice changes
    nothing the second time.
    """
    from composer.fixup.run import fixup_image, fixup_running

    if running == (image is not None):
        _fail(ComposerError("give either IMAGE or --running"))
    try:
        if running:
            if output is not None or install is not None:
                raise ComposerError("-o and --install work on images, not with --running")
            plan = fixup_running(loader=loader, dry_run=dry_run)
        else:
            assert image is not None
            plan = fixup_image(
                image,
                output=output,
                loader=loader,
                dry_run=dry_run,
                install=install,
                say=lambda line: err.print(f"[dim]{line}[/]", highlight=False),
            )
    except ComposerError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    for line in plan.lines():  # plain lines, never wrapped: scripts read them
        typer.echo(("would " if dry_run and line.startswith("change:") else "") + line)
    if dry_run and plan.changes:
        typer.echo("dry run: nothing was changed")
