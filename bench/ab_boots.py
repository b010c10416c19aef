#!/usr/bin/env python3
"""Two versions of dps-composer booting their own build of the default blueprint, interleaved
so that both see the same machine load: each version builds the image in its own cache, then
the two images are booted to a verdict one after the other, ``--runs`` times (TCG, swtpm, as
``dps-composer boot`` runs them; no ``--profile``), and once more each with ``--profile`` for
the guest's blame and critical chain. Every sample keeps its time, the load before it and the
verdict's milestones. Reports only: nothing here asserts a time.

    .venv/bin/python bench/ab_boots.py --a /var/tmp/before --b . [--runs 3] [--out F.json]

``--a`` and ``--b`` are source trees (a `git archive` of a commit, or this one); each is run as
``python -m composer`` from its own directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ab_builds import BLUEPRINT, ROOT, build, fresh_cache  # bench/ab_builds.py, beside this

from bench import boot_profile  # bench/bench.py

NAME = "debian-uki-sdboot"


def boot(src: Path, image: Path, verdict: Path, profile: bool) -> dict[str, Any]:
    load = os.getloadavg()[0]
    start = time.monotonic()
    argv = [sys.executable, "-m", "composer", "boot", str(image), "-q", "--json-file", str(verdict)]
    proc = subprocess.run(
        [*argv, *(["--profile"] if profile else [])], cwd=src, text=True, capture_output=True
    )
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{src}: boot failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"seconds": round(seconds, 2), "load1": round(load, 2), **boot_profile(verdict)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, default=ROOT)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/ab-boots.json")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    work = Path(tempfile.mkdtemp(prefix="dps-ab-boots-", dir="/var/tmp"))
    sides = {"a": args.a.resolve(), "b": args.b.resolve()}
    images: dict[str, Path] = {}
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in sides}
    try:
        for side, src in sides.items():
            cache, out = work / side / "cache", work / side / "out"
            fresh_cache(cache)
            build(src, src / BLUEPRINT, out, cache)
            images[side] = out / f"{NAME}.qcow2"
        for i in range(args.runs + 1):
            profile = i == args.runs  # the last round: profiled, timed apart
            kind = "boot to verdict (profiled)" if profile else "boot to verdict"
            for side, src in sides.items():
                sample = boot(src, images[side], work / f"{side}-{i}.json", profile)
                samples[side].setdefault(kind, []).append(sample)
                print(f"{side} {kind} #{i + 1}: {sample['seconds']} s (load {sample['load1']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {
        side: {k: statistics.median(s["seconds"] for s in v) for k, v in kinds.items()}
        for side, kinds in samples.items()
    }
    result = {
        "started": started,
        "a": str(sides["a"]),
        "b": str(sides["b"]),
        "medians": medians,
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(medians, indent=2))


if __name__ == "__main__":
    main()
