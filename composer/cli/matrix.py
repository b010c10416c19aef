"""`dps-composer matrix plan|run`: image matrices, on a Dask cluster (composer/matrix/)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from composer.cli.common import CacheDir, err, guard, out, say, wrote
from composer.core.files import atomic_write

matrix_app = typer.Typer(
    help="Build and boot image matrices (axes of blueprint variants) on a Dask cluster.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

MatrixFile = Annotated[Path, typer.Argument(help="Matrix TOML file (docs/matrix.md)")]


@matrix_app.command("plan")
def plan(matrix: MatrixFile, cache_dir: CacheDir = None) -> None:
    """Print the matrix's cells and task graph as JSON (pure: builds and boots nothing)."""
    with guard():
        from composer.matrix.graph import plan_json, plan_matrix  # when a matrix is planned

        graph = plan_matrix(matrix, cache_dir)
    sys.stdout.write(plan_json(graph))


@matrix_app.command("run")
def run(
    matrix: MatrixFile,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="tcp://HOST:PORT of a running Dask scheduler "
            "(default: a LocalCluster on this machine)",
        ),  # fmt: skip
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=256,
            help="LocalCluster worker processes (default: one per two cores)",
        ),  # fmt: skip
    ] = None,
    cache_url: Annotated[
        str,
        typer.Option(
            "--cache-url",
            help="Shared stage cache every worker pulls from and "
            "pushes to (fsspec URL: file:///dir, s3://bucket/prefix, ...)",
        ),  # fmt: skip
    ] = "",
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write a JUnit XML file: one case per cell")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the cells' records as JSON on stdout")
    ] = False,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory")] = Path(
        "matrix-out"
    ),
    cache_dir: CacheDir = None,
    cache_per_worker: Annotated[
        bool,
        typer.Option(
            "--cache-per-worker",
            help="Each worker keeps its own cache in a "
            "subdirectory of the cache directory (as on separate hosts)",
        ),  # fmt: skip
    ] = False,
) -> None:
    """Build (and boot) every cell of the matrix on a Dask cluster.

    Identical cells share one build; cells that share a root tree build it once. Each cell's
    record is OUTPUT/cells/CELL/report.json; the exit code is the gravest of the cells'
    (0 all passed, 1 a verdict FAIL, 2 input, 3 tool or environment, 4 boot infrastructure)."""
    from composer.matrix import report
    from composer.matrix import run as runner
    from composer.matrix.graph import plan_matrix
    from composer.matrix.model import load
    from composer.matrix.tasks import Caches

    started = time.monotonic()
    with guard("interrupted: the cluster was stopped"):
        model, _ = load(matrix)
        graph = plan_matrix(matrix, cache_dir)
        if cache_url:
            from composer.build.cache_shared import SharedStore

            SharedStore(cache_url)  # a bad URL fails before any cluster starts
        output.mkdir(parents=True, exist_ok=True)
        target = output.resolve()
        say(f"matrix {graph.name}: {len(graph.cells)} cells, {len(graph.tasks)} tasks")
        with runner.cluster(scheduler, workers, model.limits) as client:
            caches = Caches(
                str(cache_dir.resolve()) if cache_dir else "", cache_per_worker, cache_url
            )
            outcome = runner.run_graph(client, graph, target, caches, model.limits, say)
        records = report.write_cells(graph, outcome, target)
        code = report.exit_code(records)
        if junit is not None:
            atomic_write(junit, report.junit_xml(graph, records, time.monotonic() - started))
    table = Table("cell", "action", "status", "build", "boot")
    for row in report.summary_rows(records):
        table.add_row(*row, style={"PASS": "green", "FAIL": "red"}.get(row[2], "yellow"))
    (err if json_out else out).print(table)
    if json_out:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    else:
        wrote(target / "cells")
        if junit is not None:
            wrote(junit)
    raise typer.Exit(code)
