#!/usr/bin/env python3
"""Benchmark dps-composer on this machine: builds (cold, warm after a customization change,
no change), image sizes, boot to verdict (plain; Secure Boot + TPM). Reports medians of
several runs with the machine load at each run. Reports only: nothing here asserts a time.

    .venv/bin/python bench/bench.py [--runs 3] [--boot-runs 2] [--out bench/results.json]
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

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "blueprints/debian-uki-sdboot.toml"
SECURE = ROOT / "blueprints/debian-uki-sdboot-secureboot.toml"


def composer(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "composer", *args], cwd=ROOT, text=True, capture_output=True
    )
    elapsed = time.monotonic() - start
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"dps-composer {' '.join(args)} failed ({proc.returncode})")
    return elapsed, proc


def with_hostname(src: Path, dest: Path, hostname: str) -> Path:
    text = re.sub(r'(?m)^hostname = ".*"$', f'hostname = "{hostname}"', src.read_text())
    dest.write_text(text)
    return dest


def run(label: str, fn: Any, runs: int, results: dict[str, Any]) -> None:
    samples = []
    for i in range(runs):
        load = os.getloadavg()[0]
        seconds = fn(i)
        samples.append({"seconds": round(seconds, 2), "load1": round(load, 2)})
        print(f"{label} #{i + 1}: {seconds:.1f} s (load {load:.2f})", flush=True)
    results[label] = {
        "median_s": round(statistics.median(s["seconds"] for s in samples), 2),
        "samples": samples,
    }


def sizes(out: Path) -> dict[str, int]:
    (path,) = out.glob("*.manifest.json")
    manifest = json.loads(path.read_text())
    result = {"uki_bytes": manifest["uki"]["size"]}
    for o in manifest["outputs"]:
        result[f"{o['format']}_bytes"] = o["size"]
        result[f"{o['format']}_allocated_bytes"] = o["allocated"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--boot-runs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results.json")
    ap.add_argument("--skip-cold", action="store_true")
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "uname": os.uname().release}}
    work = Path(tempfile.mkdtemp(prefix="dps-bench-"))
    cache = work / "cache"
    out = work / "out"
    try:
        if not args.skip_cold:

            def cold(i: int) -> float:
                shutil.rmtree(cache, ignore_errors=True)
                return composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))[0]

            run("cold build (empty cache)", cold, args.runs, results)
        else:
            composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))

        def warm(i: int) -> float:
            bp = with_hostname(DEFAULT, work / "changed.toml", f"bench-{i}-{time.time_ns()}")
            return composer("build", str(bp), "-o", str(out), "--cache-dir", str(cache))[0]

        run("rebuild after hostname change", warm, args.runs, results)

        def nochange(i: int) -> float:
            return composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))[0]

        composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))
        run("rebuild with no change", nochange, args.runs, results)
        results["sizes"] = sizes(out)

        def boot(i: int) -> float:
            seconds, proc = composer("boot", str(out / "debian-uki-sdboot.qcow2"))
            if proc.returncode != 0:
                print(proc.stdout[-2000:])
            return seconds

        run("boot to verdict (TPM)", boot, args.boot_runs, results)
        if SECURE.exists():
            sb_out = work / "sb"
            composer("build", str(SECURE), "-o", str(sb_out), "--cache-dir", str(cache))
            image = next(p for p in sb_out.iterdir() if p.suffix in (".qcow2", ".vmdk", ".raw"))

            def sb_boot(i: int) -> float:
                return composer("boot", str(image))[0]

            run("boot to verdict (Secure Boot + TPM)", sb_boot, args.boot_runs, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
