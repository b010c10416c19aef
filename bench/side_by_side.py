#!/usr/bin/env python3
"""Boots side by side, as the test suite's two workers run them on two cores: the default
image booted twice at once with N vCPUs each, the vCPU counts interleaved round by round so
that both see the same machine. Every sample keeps its wall time, the verdict's phase
timings and the load before it. Reports only: nothing here asserts a time.

    .venv/bin/python bench/side_by_side.py IMAGE.qcow2 [--vcpus 2,1] [--rounds 2] [--out F]

IMAGE is a built image with its manifest beside it (`dps-composer build … -o DIR`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def one_boot(image: Path, vcpus: int, work: Path) -> dict[str, Any]:
    verdict = work / "verdict.json"
    argv = [sys.executable, "-m", "composer", "boot", str(image), "--vcpus", str(vcpus)]
    argv += ["--keep", str(work / "keep"), "--json-file", str(verdict), "-q"]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = round(time.monotonic() - start, 2)
    doc = json.loads(verdict.read_text()) if verdict.is_file() else {}
    return {
        "seconds": seconds,
        "exit": proc.returncode,
        "outcome": doc.get("outcome"),
        "timings": doc.get("timings", {}),
    }


def pair(image: Path, vcpus: int, top: Path) -> list[dict[str, Any]]:
    load = os.getloadavg()
    with ThreadPoolExecutor(2) as pool:
        works = [Path(tempfile.mkdtemp(prefix=f"v{vcpus}-", dir=top)) for _ in range(2)]
        samples = list(pool.map(lambda w: one_boot(image, vcpus, w), works))
    for s in samples:
        s["load_before"] = [round(x, 2) for x in load]
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--vcpus", default="2,1", help="vCPU counts to compare (comma-separated)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/vcpus-side-by-side.json")
    args = ap.parse_args()
    counts = [int(v) for v in args.vcpus.split(",")]
    samples: dict[str, list[dict[str, Any]]] = {str(n): [] for n in counts}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="side-by-side-", dir="/var/tmp") as top:
        for r in range(args.rounds):
            for n in counts if r % 2 == 0 else reversed(counts):
                got = pair(args.image.resolve(), n, Path(top))
                samples[str(n)] += got
                print(f"round {r + 1}, {n} vCPUs: {[s['seconds'] for s in got]}", flush=True)
    result = {
        "what": "two boots of one image side by side (dps-composer boot, TPM), N vCPUs each",
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "median_s": {n: statistics.median(s["seconds"] for s in v) for n, v in samples.items()},
        "samples": samples,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_s"]))


if __name__ == "__main__":
    main()
