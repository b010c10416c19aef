"""`dps-composer kickstart` and `dps-composer fixup`: installer and existing-image commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from composer.cli.common import err, guard, say, wrote
from composer.core.errors import UsageError
from composer.core.files import atomic_write


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
    from composer.kickstart.render import render_file

    with guard():
        text = render_file(blueprint, uki_repo=uki_repo)
        if output is not None:  # a password (even a hash) is for the owner's eyes only
            atomic_write(output, text, mode=0o600 if carries_password(text) else 0o644)
    if output is None:
        typer.echo(text, nl=False)
        return
    wrote(output, console=err)


def carries_password(kickstart: str) -> bool:
    """Whether a kickstart sets a password (``user ... --password=`` or ``rootpw`` with one)."""
    for line in kickstart.splitlines():
        words = line.split()
        if words[:1] == ["user"] and any(w.startswith("--password") for w in words):
            return True
        if words[:1] == ["rootpw"] and not {"--lock"} >= set(words[1:]):
            return True
    return False


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
        Literal["keep", "systemd-boot", "uki-direct", "grub2"],
        typer.Option(help="The boot loader to set up (keep: the one there)"),
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

    with guard():
        if running == (image is not None):
            raise UsageError("give either IMAGE or --running")
        if running:
            if output is not None or install is not None:
                raise UsageError("-o and --install work on images, not with --running")
            plan = fixup_running(loader=loader, dry_run=dry_run)
        else:
            assert image is not None
            plan = fixup_image(
                image,
                output=output,
                loader=loader,
                dry_run=dry_run,
                install=install,
                say=lambda line: say(line, "dim"),
            )
    for line in plan.lines():  # plain lines, never wrapped: scripts read them
        typer.echo(("would " if dry_run and line.startswith("change:") else "") + line)
    if dry_run and plan.changes:
        typer.echo("dry run: nothing was changed")
