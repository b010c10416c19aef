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
