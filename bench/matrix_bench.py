#!/usr/bin/env python3
"""Benchmark `dps-composer matrix run` on this machine: one build-only matrix of N variants
of the default blueprint (host names: they share the root tree), run

- serially: `dps-composer build` of each cell's blueprint, one after the other, one cache;
- on a LocalCluster of W worker processes, each with its own cache (as W hosts), sharing a
  stage store (``--cache-url``): each unique stage built once;
- the same without the store: each worker builds the shared root itself (work repeated).

Every run starts from caches that hold this machine's tools tree, uki-virt repository,
package cache and secret key, but no stage entries. Reports wall time, the machine's load,
and how many root trees and images were built (stage cache "storing" lines in the build
logs). Reports only: nothing here asserts a time.

    .venv/bin/python bench/matrix_bench.py [--cells 4] [--workers 2] [--out bench/matrix-results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "blueprints/debian-uki-sdboot.toml"
SEED = ("trees", "uki-virt", "archives", "apt-index", "secret.key", "kvm-probe.json")


def warm_cache() -> Path:
    env = os.environ.get("DPS_COMPOSER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "dps-composer"


def seed(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    for name in SEED:
        if (warm_cache() / name).exists():
            flags = "-al" if name == "archives" else "-a"
            subprocess.run(["cp", flags, "--", str(warm_cache() / name), str(cache)], check=True)
    return cache


def matrix_file(where: Path, cells: int) -> Path:
    shutil.copy(DEFAULT, where / "base.toml")
    values = ", ".join(f'{{ name = "h{i}", hostname = "bench-{i}" }}' for i in range(cells))
    path = where / "bench.toml"
    path.write_text(
        f'[matrix]\nname = "bench"\nbase = "base.toml"\n\n[[axis]]\nname = "host"\n'
        f"values = [{values}]\n"
    )
    return path


def built(out: Path) -> dict[str, int]:
    """How many root trees and images the run's builds made (not taken from a cache)."""
    logs = [p.read_text() for p in out.rglob("*.build.log")]
    return {
        stage: sum(len(re.findall(rf"stage cache {stage} \w+: storing", t)) for t in logs)
        for stage in ("root", "image")
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(argv[:5])} … failed ({proc.returncode})")
    return round(time.monotonic() - start, 1)


def serial(work: Path, matrix: Path) -> dict[str, Any]:
    cache = seed(work / "serial-cache")
    env = {**os.environ, "DPS_COMPOSER_CACHE_DIR": str(cache)}
    plan = json.loads(subprocess.run(
        [sys.executable, "-m", "composer", "matrix", "plan", str(matrix)],
        cwd=ROOT, env=env, text=True, capture_output=True, check=True,
    ).stdout)  # fmt: skip
    out = work / "serial-out"
    load = os.getloadavg()[0]
    seconds = 0.0
    for cell in plan["cells"]:
        directory = out / cell["id"]
        directory.mkdir(parents=True)
        bp = directory / "blueprint.toml"
        # the cell's blueprint as `matrix run` writes it
        subprocess.run(
            [sys.executable, "-c", _CELL_BLUEPRINT, str(matrix), cell["id"], str(bp)],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        seconds += timed(
            [sys.executable, "-m", "composer", "build", str(bp), "-o", str(directory)], env
        )
    return {"wall_s": round(seconds, 1), "load_at_start": load, "built": built(out)}


_CELL_BLUEPRINT = """
import sys
from pathlib import Path
from composer.matrix.cells import Source, cells
from composer.matrix.model import load
model, text = load(Path(sys.argv[1]))
cell = next(c for c in cells(Source(model, sys.argv[1], text)) if c.id == sys.argv[2])
Path(sys.argv[3]).write_text(cell.blueprint)
"""


def cluster(work: Path, matrix: Path, workers: int, shared: bool) -> dict[str, Any]:
    name = "cluster-shared" if shared else "cluster-alone"
    caches = work / f"{name}-caches"
    for i in range(workers):
        seed(caches / f"worker-{i}")
    out = work / f"{name}-out"
    argv = [sys.executable, "-m", "composer", "matrix", "run", str(matrix), "--workers",
            str(workers), "--cache-per-worker", "-o", str(out)]  # fmt: skip
    if shared:
        argv += ["--cache-url", (work / f"{name}-store").as_uri()]
    load = os.getloadavg()[0]
    seconds = timed(argv, {**os.environ, "DPS_COMPOSER_CACHE_DIR": str(caches)})
    return {"wall_s": seconds, "load_at_start": load, "built": built(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "matrix-results.json")
    args = parser.parse_args()
    base = Path(os.environ.get("DPS_COMPOSER_WORK_DIR", "/var/tmp"))
    with tempfile.TemporaryDirectory(prefix="dps-matrix-bench-", dir=base) as tmp:
        work = Path(tmp)
        matrix = matrix_file(work, args.cells)
        results = {
            "cells": args.cells,
            "workers": args.workers,
            "cores": os.cpu_count(),
            "serial": serial(work, matrix),
            "cluster_shared_store": cluster(work, matrix, args.workers, shared=True),
            "cluster_no_store": cluster(work, matrix, args.workers, shared=False),
        }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
