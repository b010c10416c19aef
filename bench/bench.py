#!/usr/bin/env python3
"""Benchmark dps-composer on this machine: builds (cold, warm after a customization change,
no change), image sizes, boot to verdict (TPM; Secure Boot + TPM), the FAIL verdict for an
image whose root is not discoverable, and the guest's boot profile (systemd-analyze and blame,
from the check's report of one more boot of each kind with ``--profile``, timed apart).
Reports medians of several runs with the machine load at each run. Reports only: nothing here
asserts a time.

    .venv/bin/python bench/bench.py [--runs 3] [--boot-runs 2] [--out bench/results.json]
        [--phases build,boot,fail,vcpus,tpm] [--boot-tools tree|host] [--keep-tools]

``--phases vcpus`` boots the default image with 1 and with 2 vCPUs (the engine's ``smp``).
``--phases tpm`` boots it with and without swtpm, interleaved: what measured boot costs, per
milestone (the firmware, systemd-stub and the kernel's EFI stub hash the UKI into PCRs 4, 11
and 9 only when there is a TPM).
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
import tomllib
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


def boot_profile(verdict_file: Path) -> dict[str, Any]:
    """What the guest's check reported about its boot (systemd-analyze), and the milestones."""
    verdict = json.loads(verdict_file.read_text())
    guest = verdict.get("guest") or {}
    keep = ("analyze", "blame", "critical_chain", "boot_timings", "unit_cpu", "cpu")
    return {
        "timings": verdict.get("timings", {}),
        "guest": {k: v for k, v in guest.items() if k in keep or "analy" in k or "blame" in k},
        "notes": [n for n in verdict.get("notes", []) if n.startswith(("boot tools", "vCPUs"))],
        "failed": [c for c in verdict.get("checks", []) if not c.get("passed")],
    }


def linux_generic_copy(out: Path, dest: Path) -> tuple[Path, Path]:
    """A copy of the default image whose root partition has the linux-generic type (not
    discoverable), and its manifest beside it."""
    dest.mkdir(parents=True, exist_ok=True)
    image = dest / "debian-uki-sdboot.raw"
    shutil.copyfile(out / "debian-uki-sdboot.raw", image)
    manifest = dest / "debian-uki-sdboot.manifest.json"
    shutil.copyfile(out / "debian-uki-sdboot.manifest.json", manifest)
    generic = "0fc63daf-8483-4772-8e79-3d69d8477de4"  # DPS: linux-generic
    subprocess.run(["sfdisk", "-q", "--part-type", str(image), "2", generic], check=True)
    return image, manifest


def boot_with_smp(image: Path, smp: int, keep: Path) -> float:
    """Boot through the engine (the CLI has no vCPU option) and time it to the verdict."""
    from composer.judge.boot import boot_image

    start = time.monotonic()
    verdict = boot_image(image, smp=smp, keep_dir=keep, profile=True)
    seconds = time.monotonic() - start
    oops = "Oops" in (keep / "serial.log").read_text(errors="replace")
    print(f"  {smp} vCPU: {verdict.outcome} oops={oops}", flush=True)
    if verdict.outcome != "pass" or oops:
        raise SystemExit(f"{smp} vCPUs: {verdict.outcome}, oops={oops}: see {keep}")
    return seconds


MILESTONES = ("firmware", "loader", "kernel", "root-mounted", "login", "check")


def tpm_phase(image: Path, work: Path, runs: int, results: dict[str, Any]) -> None:
    """The same image booted with and without a TPM, interleaved; medians per milestone."""
    samples: dict[str, list[dict[str, Any]]] = {"TPM": [], "no TPM": []}
    for i in range(runs):
        for label, extra in (("TPM", ()), ("no TPM", ("--no-tpm",))):
            verdict = work / f"tpm-{i}-{label.replace(' ', '-')}.json"
            load = os.getloadavg()[0]
            seconds, _ = composer("boot", str(image), *extra, "--json-file", str(verdict))
            timings = json.loads(verdict.read_text()).get("timings", {})
            marks = {m: timings[m] for m in MILESTONES if m in timings}
            samples[label].append({"seconds": round(seconds, 2), "load1": round(load, 2), **marks})
            print(f"{label} #{i + 1}: {seconds:.1f} s (load {load:.2f}) {marks}", flush=True)
    results["measured boot cost"] = {
        label: {
            "median_s": round(statistics.median(s["seconds"] for s in rows), 2),
            "milestones": {
                m: round(statistics.median(s[m] for s in rows), 2)
                for m in MILESTONES
                if all(m in s for s in rows)
            },
            "samples": rows,
        }
        for label, rows in samples.items()
    }


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


def keep_tools_tree(cache: Path) -> None:
    """A fresh cache that holds only a copy of the user's tools tree (its build not timed)."""
    (cache / "trees").mkdir(parents=True)
    for tree in (Path.home() / ".cache/dps-composer/trees").glob("tools-*"):
        if (tree / "usr/bin/ukify").exists():
            subprocess.run(["cp", "-a", str(tree), str(cache / "trees")], check=True)


def timed_build(bp: Path, out: Path, cache: Path, results: dict[str, Any], label: str) -> float:
    """One build; its stage timings (the manifest's) kept under ``stage timings``."""
    seconds, _ = composer("build", str(bp), "-o", str(out), "--cache-dir", str(cache))
    (path,) = out.glob(f"{tomllib.loads(bp.read_text())['name']}.manifest.json")
    timings = json.loads(path.read_text())["timings"]
    results.setdefault("stage timings", {}).setdefault(label, []).append(timings)
    return seconds


def build_phases(work: Path, cache: Path, out: Path, args: Any, results: dict[str, Any]) -> None:
    if "build" not in args.phases:
        composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))
        return
    if not args.skip_cold:

        def cold(i: int) -> float:
            shutil.rmtree(cache, ignore_errors=True)
            if args.keep_tools:
                keep_tools_tree(cache)
            return timed_build(DEFAULT, out, cache, results, "cold")

        run("cold build (empty cache)", cold, args.runs, results)
    else:
        composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))

    def warm(i: int) -> float:
        bp = with_hostname(DEFAULT, work / "changed.toml", f"bench-{i}-{time.time_ns()}")
        return timed_build(bp, out, cache, results, "hostname")

    run("rebuild after hostname change", warm, args.runs, results)

    def nochange(i: int) -> float:
        return composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))[0]

    composer("build", str(DEFAULT), "-o", str(out), "--cache-dir", str(cache))
    run("rebuild with no change", nochange, args.runs, results)
    results["sizes"] = sizes(out)


def boot_phases(work: Path, cache: Path, out: Path, args: Any, results: dict[str, Any]) -> None:
    profiles: dict[str, Any] = results.setdefault("boot profiles", {})

    def one_boot(label: str, name: str, argv: tuple[str, ...], profile: bool) -> float:
        verdict = work / f"verdict-{len(profiles)}-{name}.json"
        extra = ("--profile",) if profile else ()
        seconds, proc = composer("boot", *argv, *extra, "--json-file", str(verdict))
        if proc.returncode not in (0, 1) or not verdict.exists():
            print(proc.stdout[-2000:])
        else:
            profiles[f"{label} {name}"] = boot_profile(verdict)
        return seconds

    def timed_boot(label: str, *argv: str) -> Any:
        """Timed boots as a user runs them (no ``--profile``: ``systemd-analyze blame`` costs
        seconds under TCG); after the last, one profiled boot whose time is kept apart."""

        def boot(i: int) -> float:
            seconds = one_boot(label, f"#{i + 1}", argv, profile=False)
            if i == args.boot_runs - 1:
                profiled = one_boot(label, "(profiled)", argv, profile=True)
                results.setdefault("profiled boots", {})[label] = round(profiled, 2)
            return seconds

        return boot

    if "boot" in args.phases:
        label = "boot to verdict (TPM)"
        run(label, timed_boot(label, str(out / "debian-uki-sdboot.qcow2")), args.boot_runs, results)
        if SECURE.exists():
            sb_out = work / "sb"
            composer("build", str(SECURE), "-o", str(sb_out), "--cache-dir", str(cache))
            image = next(p for p in sb_out.iterdir() if p.suffix in (".qcow2", ".vmdk", ".raw"))
            label = "boot to verdict (Secure Boot + TPM)"
            run(label, timed_boot(label, str(image)), args.boot_runs, results)
    if "fail" in args.phases:
        image, manifest = linux_generic_copy(out, work / "generic")
        label = "FAIL verdict, root not discoverable"
        boot = timed_boot(label, str(image), "--manifest", str(manifest))
        run(label, boot, args.boot_runs, results)
    if "vcpus" in args.phases:
        for smp in (1, 2):

            def with_smp(i: int, smp: int = smp) -> float:
                return boot_with_smp(out / "debian-uki-sdboot.qcow2", smp, work / f"smp{smp}-{i}")

            run(f"boot to verdict (TPM), {smp} vCPU", with_smp, args.boot_runs, results)
    if "tpm" in args.phases:
        tpm_phase(out / "debian-uki-sdboot.qcow2", work, args.boot_runs, results)
        results["sizes"] = sizes(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--boot-runs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results.json")
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument(
        "--keep-tools", action="store_true", help="cold builds start with the tools tree cached"
    )
    ap.add_argument("--phases", default="build,boot,fail", type=lambda v: set(v.split(",")))
    ap.add_argument("--boot-tools", choices=("tree", "host"), help="DPS_COMPOSER_BOOT_TOOLS")
    args = ap.parse_args()
    if args.boot_tools:
        os.environ["DPS_COMPOSER_BOOT_TOOLS"] = args.boot_tools
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "uname": os.uname().release},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "boot_tools": args.boot_tools or "auto",
    }
    work = Path(tempfile.mkdtemp(prefix="dps-bench-", dir="/var/tmp"))
    cache = work / "cache"
    out = work / "out"
    if "build" not in args.phases:  # boots only: the shared cache makes the image quickly
        cache = Path(
            os.environ.get("DPS_COMPOSER_CACHE_DIR") or Path.home() / ".cache/dps-composer"
        )
    try:
        build_phases(work, cache, out, args, results)
        boot_phases(work, cache, out, args, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "boot profiles"}, indent=2))


if __name__ == "__main__":
    main()
