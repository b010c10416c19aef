"""dps-composer command line: parse, call, render. The work happens in the modules."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from composer import blueprint as bp_mod
from composer.build import StageHook
from composer.build import build as run_build
from composer.errors import ComposerError
from composer.plan import Plan, make_plan

app = typer.Typer(
    help="Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)
out = Console()


def _fail(exc: ComposerError) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _load_plan(path: Path) -> Plan:
    blueprint = bp_mod.load(path)
    return make_plan(blueprint, str(path))


@app.command()
def plan(blueprint: Annotated[Path, typer.Argument(help="Blueprint TOML file")]) -> None:
    """Print the build plan (partitions, UUIDs, packages, boot chain) as JSON."""
    try:
        p = _load_plan(blueprint)
    except ComposerError as exc:
        _fail(exc)
    sys.stdout.write(p.to_json() + "\n")


@app.command()
def build(
    blueprint: Annotated[Path, typer.Argument(help="Blueprint TOML file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory")] = Path("out"),
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", envvar="DPS_COMPOSER_CACHE_DIR", help="Cache directory"),
    ] = None,
) -> None:
    """Build the image: root tree, UKI, ESP, disk, outputs and manifest.json."""
    try:
        p = _load_plan(blueprint)
        with _progress() as stage:
            result = run_build(p, output, cache_dir=cache_dir, stage=stage)
    except ComposerError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: nothing was written[/]")
        raise typer.Exit(130) from None
    for path in result.outputs:
        out.print(f"[green]wrote[/] {path}")
    out.print(f"[green]wrote[/] {result.manifest}")
    total = sum(result.timings.values())
    out.print(
        f"built in {total:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    )


@app.command()
def boot(
    image: Annotated[Path, typer.Argument(help="Disk image (raw or qcow2)")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the verdict as JSON to this file")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before giving up (default: manifest, else 600)")
    ] = None,
    accel: Annotated[str, typer.Option(help="auto, kvm or tcg")] = "auto",
    keep: Annotated[
        Path | None,
        typer.Option(help="Keep serial logs and work files here (default: IMAGE-NAME.boot/)"),
    ] = None,
    tpm: Annotated[bool, typer.Option("--tpm/--no-tpm", help="Attach an swtpm TPM 2.0")] = True,
) -> None:
    """Boot IMAGE in QEMU with OVMF and swtpm and judge it: PASS exits 0, FAIL exits 1."""
    from composer.vm.boot import boot_image
    from composer.vm.validate import load_expectations

    if accel not in ("auto", "kvm", "tcg"):
        _fail(ComposerError(f"--accel: {accel!r} is not one of auto, kvm, tcg"))
    keep_dir = keep or image.parent / f"{image.name}.boot"
    try:
        expectations = load_expectations(image)
        verdict = boot_image(
            image,
            expectations=expectations,
            accel=accel,
            timeout=timeout or _manifest_timeout(image),
            tpm=tpm,
            keep_dir=keep_dir,
            console=lambda line: err.print(f"[dim]{line}[/]", highlight=False),
        )
    except ComposerError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: QEMU and swtpm stopped[/]")
        raise typer.Exit(130) from None
    for check in verdict.checks:
        mark = "[green]PASS[/]" if check.passed else "[bold red]FAIL[/]"
        out.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    out.print(
        ("[bold green]PASS[/]" if verdict.passed else "[bold red]FAIL[/]")
        + f" {image.name} (serial log: {keep_dir / 'serial.log'})",
        highlight=False,
    )
    if json_out is not None:
        json_out.write_text(verdict.to_json() + "\n")
    raise typer.Exit(0 if verdict.passed else 1)


def _manifest_timeout(image: Path) -> float:
    import json

    manifest = image.parent / "manifest.json"
    try:
        return float(json.loads(manifest.read_text())["validate"]["timeout"])
    except (OSError, ValueError, KeyError, TypeError):
        return 600.0


@contextlib.contextmanager
def _progress() -> Iterator[StageHook]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        task = progress.add_task(name, total=1)
        try:
            yield
        finally:
            progress.update(task, completed=1)
            progress.stop_task(task)

    with progress:
        yield stage


def main() -> None:
    app()


if __name__ == "__main__":
    main()
