"""`dps-composer cache list|prune`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from composer.cache import StageCache
from composer.units import human_size, parse_duration, parse_size

cache_app = typer.Typer(
    help="Inspect and prune the stage cache.", no_args_is_help=True, rich_markup_mode=None
)
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar="DPS_COMPOSER_CACHE_DIR", help="Cache directory"),
]


def _cache(cache_dir: Path | None) -> StageCache:
    from composer.build import default_cache_dir

    return StageCache(cache_dir or default_cache_dir())


@cache_app.command("list")
def list_entries(cache_dir: CacheDir = None) -> None:
    """List cached stage results with their size and when they were last used."""
    table = Table("stage", "key", "size", "last used")
    total = 0
    now = time.time()
    for e in _cache(cache_dir).entries():
        total += e.size
        table.add_row(e.stage, e.key, human_size(e.size), f"{(now - e.last_used) / 3600:.1f} h ago")
    console = Console()
    console.print(table)
    console.print(f"total {human_size(total)}")


@cache_app.command()
def prune(
    older_than: Annotated[
        str | None, typer.Option(help="Remove entries unused for this long, e.g. '7 days'")
    ] = None,
    max_size: Annotated[
        str | None, typer.Option(help="Then keep at most this much, e.g. '20 GiB'")
    ] = None,
    cache_dir: CacheDir = None,
) -> None:
    """Remove old entries (least recently used first)."""
    try:
        age = parse_duration(older_than) if older_than else None
        size = parse_size(max_size) if max_size else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    removed = _cache(cache_dir).prune(older_than=age, max_size=size)
    for e in removed:
        typer.echo(f"removed {e.stage}/{e.key} ({human_size(e.size)})")
    typer.echo(f"{len(removed)} entries removed")
