#!/usr/bin/env python3
"""Two versions of dps-composer against each other, interleaved so that both see the same
machine load: a cold build (a fresh cache holding only a copy of the tools tree) and rebuilds
after a hostname change, each version in its own cache. Every sample keeps its time, the load
before it and the manifest's stage timings. Reports only: nothing here asserts a time.

    .venv/bin/python bench/ab_builds.py --a /var/tmp/before --b . [--runs 2] [--rebuilds 1]
        [--tools-made] [--out F.json]

``--tools-made``: the cold builds start from an empty cache and make the tools tree too.

``--a`` and ``--b`` are source trees (a `git archive` of a commit, or this one); each is run as
``python -m composer`` from its own directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from composer.core.paths import cache_dir

ROOT = Path(__file__).resolve().parents[1]
BLUEPRINT = "blueprints/debian-uki-sdboot.toml"
TOOLS = cache_dir() / "trees"  # the user's cache (DPS_COMPOSER_CACHE_DIR too)


def build(src: Path, blueprint: Path, out: Path, cache: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    start = time.monotonic()
    argv = [sys.executable, "-m", "composer", "build", str(blueprint), "-o", str(out)]
    proc = subprocess.run(
        [*argv, "--cache-dir", str(cache)], cwd=src, text=True, capture_output=True
    )
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{src}: build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    manifest = json.loads((out / "debian-uki-sdboot.manifest.json").read_text())
    return {"seconds": round(seconds, 2), "load1": round(load, 2), "timings": manifest["timings"]}


def fresh_cache(cache: Path, *, tools_kept: bool = True) -> None:
    shutil.rmtree(cache, ignore_errors=True)
    (cache / "trees").mkdir(parents=True)
    for tree in TOOLS.glob("tools-*") if tools_kept else ():
        if (tree / "usr/bin/ukify").exists():
            subprocess.run(["cp", "-a", str(tree), str(cache / "trees")], check=True)


def with_hostname(src: Path, dest: Path, hostname: str) -> Path:
    text = (src / BLUEPRINT).read_text()
    dest.write_text(re.sub(r'(?m)^hostname = ".*"$', f'hostname = "{hostname}"', text))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, default=ROOT)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--rebuilds", type=int, default=1, help="hostname rebuilds per run and side")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/ab-builds.json")
    ap.add_argument(
        "--tools-made", action="store_true", help="cold builds make the tools tree too (no copy)"
    )
    args = ap.parse_args()
    cold = "cold build, tools tree made" if args.tools_made else "cold build, tools tree kept"
    work = Path(tempfile.mkdtemp(prefix="dps-ab-", dir="/var/tmp"))
    sides = {"a": args.a.resolve(), "b": args.b.resolve()}
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in sides}
    try:
        for i in range(args.runs):
            for side, src in sides.items():
                cache, out = work / side / "cache", work / side / "out"
                fresh_cache(cache, tools_kept=not args.tools_made)
                sample = build(src, src / BLUEPRINT, out, cache)
                samples[side].setdefault(cold, []).append(sample)
                print(f"{side} cold #{i + 1}: {sample['seconds']} s (load {sample['load1']})")
            for j in range(args.rebuilds):
                for side, src in sides.items():
                    cache, out = work / side / "cache", work / side / "out"
                    name = f"ab-{i}-{j}-{time.time_ns()}"
                    bp = with_hostname(src, work / f"{side}-host.toml", name)
                    sample = build(src, bp, out, cache)
                    samples[side].setdefault("rebuild after hostname change", []).append(sample)
                    print(
                        f"{side} hostname #{i + 1}.{j + 1}: {sample['seconds']} s "
                        f"(load {sample['load1']})"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {
        side: {k: statistics.median(s["seconds"] for s in v) for k, v in kinds.items()}
        for side, kinds in samples.items()
    }
    result = {"a": str(sides["a"]), "b": str(sides["b"]), "medians": medians, "samples": samples}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(medians, indent=2))


if __name__ == "__main__":
    main()
