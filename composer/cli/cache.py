"""`dps-composer cache list|prune|check`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from composer.build import cache_record
from composer.build.cache import Entry, StageCache, leftover_temporaries
from composer.cli.common import CacheDir, JsonStyle, guard, out, print_json, say
from composer.core.errors import UsageError
from composer.core.units import human_size, parse_duration, parse_size

cache_app = typer.Typer(
    help="Inspect, check and prune the stage cache.", no_args_is_help=True, rich_markup_mode=None
)


def _cache(cache_dir: Path | None) -> StageCache:
    from composer.core import paths

    root = cache_dir or paths.cache_dir()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--cache-dir {root}: not a directory")
    return StageCache(root)


@cache_app.command("list")
def list_entries(cache_dir: CacheDir = None, json_style: JsonStyle = None) -> None:
    """List cached stage results with their size and when they were last used."""
    table = Table("stage", "key", "size", "last used", "state")
    total = 0
    now = time.time()
    with guard(file_system="stage cache"):
        entries = list(_cache(cache_dir).entries())
    if json_style:
        print_json([_entry_dict(e) for e in entries], json_style)
        return
    for e in entries:
        total += e.size
        table.add_row(
            e.stage,
            e.key,
            human_size(e.size),
            f"{(now - e.last_used) / 3600:.1f} h ago",
            f"damaged: {e.problem}" if e.problem else "",
        )
    out.print(table)
    say(f"total {human_size(total)}", console=out)


def _entry_dict(e: Entry) -> dict[str, object]:
    return {
        "stage": e.stage,
        "key": e.key,
        "path": str(e.path),
        "size": e.size,
        "created": e.created,
        "last_used": e.last_used,
        "problem": e.problem or None,
    }


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
    """Remove old entries (least recently used first), entries whose record cannot be read,
    and what killed builds left behind."""
    try:
        age = parse_duration(older_than) if older_than else None
        size = parse_size(max_size) if max_size else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with guard(file_system="stage cache"):
        removed = _cache(cache_dir).prune(older_than=age, max_size=size)
    for e in removed:
        why = f", damaged: {e.problem}" if e.problem else ""
        say(f"removed {e.stage}/{e.key} ({human_size(e.size)}{why})", console=out)
    say(f"{len(removed)} entries removed", console=out)


@cache_app.command()
def check(cache_dir: CacheDir = None) -> None:
    """Check every entry against its record in full (sizes, sha256 of every file, tree
    contents) and remove the damaged ones; exits 1 when there were any. Temporaries of
    killed commands are listed (the next build or `cache prune` removes them)."""
    damaged = 0
    with guard(file_system="stage cache"):
        cache = _cache(cache_dir)
        for path in leftover_temporaries(cache.cache):
            say(f"leftover of a killed command: {path}", console=out)
        entries = list(cache.entries())
        for e in entries:
            problem = e.problem or cache_record.check(e.path, full=True)
            if problem:
                damaged += 1
                cache.discard(e.path)
                say(f"damaged {e.stage}/{e.key}: {problem} (removed)", "yellow", console=out)
    say(f"{len(entries)} entries checked, {damaged} damaged", console=out)
    raise typer.Exit(1 if damaged else 0)
