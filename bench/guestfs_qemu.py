#!/usr/bin/env python3
"""libguestfs on the host's QEMU against the boot tools tree's QEMU (as ``inspect`` and
``fixup`` run it, composer/toolchain/guestfs.py), interleaved so that both see the same load: per
run and side, the appliance's launch and ``inspect_os`` on ``--image``, read-only. The tree is
made first if missing (ensure_boot_tools). Reports only: nothing here asserts a time.

    .venv/bin/python bench/guestfs_qemu.py --image OUT/debian-uki-sdboot.raw [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from composer.core import paths
from composer.toolchain.boottools import ensure_boot_tools, host_arch
from composer.toolchain.guestfs import handle, hypervisor

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"host": "host", "tree": "auto"}  # DPS_COMPOSER_BOOT_TOOLS for each side


def sample(image: Path, mode: str) -> dict[str, Any]:
    os.environ[paths.BOOT_TOOLS_ENV] = mode
    load = os.getloadavg()[0]
    hv = hypervisor()
    with handle() as g:
        g.add_drive_opts(str(image), format="raw", readonly=True)
        start = time.monotonic()
        g.launch()
        launched = time.monotonic()
        roots = g.inspect_os()
        inspected = time.monotonic()
    assert roots, f"{image}: no operating system found"
    return {
        "hv": str(hv) if hv else "host",
        "load1": round(load, 2),
        "launch": round(launched - start, 2),
        "inspect_os": round(inspected - launched, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/guestfs-qemu.json")
    args = ap.parse_args()
    ensure_boot_tools(paths.cache_dir(), host_arch())
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    samples: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for run in range(args.runs):
        for side, mode in SIDES.items() if run % 2 == 0 else reversed(SIDES.items()):
            samples[side].append(sample(args.image.resolve(), mode))
            print(side, samples[side][-1], flush=True)
    medians = {
        side: {k: statistics.median(s[k] for s in runs) for k in ("launch", "inspect_os")}
        for side, runs in samples.items()
    }
    doc = {
        "started": started,
        "image": str(args.image),
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "medians": medians,
        "samples": samples,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(medians, indent=1))


if __name__ == "__main__":
    main()
