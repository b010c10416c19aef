#!/usr/bin/env python3
"""Benchmark dps-composer against mkosi building the same content, in the same run.

mkosi (Debian's package, from a trixie tree made with the project's own mmdebstrap wrapper)
builds bench/mkosi-peer/ (the default blueprint in mkosi's words: trixie main, the same
packages, hostname, user, command line, systemd-boot + UKI, ESP + DPS root in 2 GiB, a zstd
qcow2 beside the raw image), chrooted into the tree in a private mount namespace. It needs no
loop device: systemd-repart writes the disk offline. Both sides download their packages from
deb.debian.org on a cold build (fresh caches on both sides); mkosi caches as mkosi does
(Incremental=yes, its package cache).

Measured, ours and mkosi's runs interleaved, each sample with /proc/loadavg before and after:
cold build (empty caches), rebuild after a hostname change, rebuild with no change (mkosi
needs ``--force``: without it it refuses to overwrite its output), and boot to the login prompt
under TCG with the boot tools tree's QEMU and OVMF (same vCPUs, no TPM, SMBIOS first-boot
credentials for both), plus ours to its verdict (``dps-composer boot``). Reports only:
nothing here asserts a time.

    .venv/bin/python bench/mkosi_peer.py [--runs 2] [--boot-runs 2] [--phases build,boot]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench import DEFAULT, ROOT, with_hostname  # bench/bench.py, beside this script
from composer.core.hashing import key_of
from composer.core.paths import cache_dir
from composer.image.firmware import select_firmware
from composer.judge.credentials import FIRSTBOOT
from composer.judge.kvm import tcg_args
from composer.judge.qemu import QemuConfig, QemuProcess, build_command, qemu_command
from composer.rootfs.apt import mmdebstrap
from composer.spec.arch import ARCHES
from composer.toolchain.boottools import BootTools, ensure_boot_tools, installed_versions
from composer.toolchain.toolstree import TOOLS_MIRROR, TOOLS_SUITE, ensure_tools_tree

PEER_CONF = ROOT / "bench/mkosi-peer"
RESULTS = ROOT / "bench/results"
ARCH = ARCHES["x86_64"]
IMAGE = "debian-uki-sdboot"
# mkosi and what it runs to build a bootable Debian disk: apt, systemd-repart, ukify,
# bootctl, mkfs.vfat/mtools, mke2fs, zstd, kmod, cpio; qemu-img for the qcow2
MKOSI_TREE_PACKAGES = (
    "mkosi", "systemd", "systemd-sysv", "udev", "systemd-ukify", "systemd-boot-efi",
    "systemd-boot-tools", "systemd-repart", "apt", "dpkg", "debian-archive-keyring",
    "dosfstools", "mtools", "e2fsprogs", "zstd", "kmod", "cpio", "python3-pefile",
    "qemu-utils", "util-linux", "fdisk", "ca-certificates", "openssl", "xz-utils",
)  # fmt: skip
# Run in a private mount namespace (unshare): make the tree a mount point (mkosi's sandbox
# remounts / as a slave), give it /proc, /sys, /dev, a /tmp and the host's resolver, chroot.
# A fixed program: the tree and mkosi's arguments are its positional parameters.
IN_TREE = """set -e
root=$1; shift
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"
mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
exec chroot "$root" "$@"
"""
LOGIN = b" login: "


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def run_logged(
    argv: list[str], log: Path, ok: tuple[int, ...] = (0,)
) -> tuple[float, list[tuple[float, str]]]:
    """Run ``argv``, every output line time-stamped (seconds from the start) into ``log``."""
    lines: list[tuple[float, str]] = []
    start = time.monotonic()
    with (
        subprocess.Popen(
            argv, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as proc,
        open(log, "a") as fh,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            t = time.monotonic() - start
            lines.append((t, line.rstrip("\n")))
            fh.write(f"{t:8.2f} {line}")
        rc = proc.wait()
    elapsed = time.monotonic() - start
    if rc not in ok:
        raise SystemExit(f"{argv[0]} ... failed ({rc}): see {log}")
    return elapsed, lines


def steps(lines: list[tuple[float, str]], marker: Callable[[str], str | None]) -> dict[str, float]:
    """Seconds from each marked line to the next one (the last: to the end of the output, so
    ours' "image" includes storing and publishing). Steps of one name add up: mkosi's
    "Installing Debian" is the image's and its default initrd's package installation."""
    marks = [(t, name) for t, line in lines if (name := marker(line))]
    end = lines[-1][0] if lines else 0.0
    out: dict[str, float] = {}
    for (t, name), nxt in zip(marks, [*marks[1:], (end, "")], strict=True):
        out[name] = round(out.get(name, 0.0) + nxt[0] - t, 2)
    return out


def mkosi_step(line: str) -> str | None:
    """mkosi's "‣ Step…" lines, without the workspace paths that differ from run to run."""
    if not line.startswith("‣"):
        return None
    return line.lstrip("‣ ").split(" /", 1)[0].rstrip("…").strip()


def built_stage(line: str) -> str | None:
    """The stage of our log's "HH:MM:SS stage NAME: built in N s" lines (not "cached in")."""
    parts = line.split()
    if len(parts) >= 5 and parts[1] == "stage" and parts[3:5] == ["built", "in"]:
        return parts[2].rstrip(":")
    return None


def ours_stage(line: str) -> str | None:
    """Our build log's "HH:MM:SS stage NAME: started" lines."""
    parts = line.split()
    if len(parts) == 4 and parts[1] == "stage" and parts[3] == "started":
        return parts[2].rstrip(":")
    return None


def ensure_mkosi_tree(base: Path) -> Path:
    """A trixie tree with mkosi and its tools, made once (keyed by the package list)."""
    tree = base / f"mkosi-{TOOLS_SUITE}-{key_of(list(MKOSI_TREE_PACKAGES))}"
    if (tree / "usr/bin/mkosi").exists():
        return tree
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{tree.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    mmdebstrap(
        tmp,
        suite=TOOLS_SUITE,
        mirror=TOOLS_MIRROR,
        arch=ARCH,
        packages=MKOSI_TREE_PACKAGES,
        archive_cache=base / "archives",
    )
    tmp.rename(tree)
    return tree


@dataclass
class Mkosi:
    """mkosi run from its tree, on the configuration copied into the tree's /peer."""

    tree: Path
    log: Path

    @property
    def state(self) -> Path:
        return self.tree / "peer"

    def reset(self, cold: bool) -> None:
        """A fresh copy of the configuration; with ``cold`` also empty caches and outputs."""
        shutil.rmtree(self.state / "conf", ignore_errors=True)
        shutil.copytree(PEER_CONF, self.state / "conf")
        for sub in ("cache", "pkgcache", "out", "work"):
            if cold:
                shutil.rmtree(self.state / sub, ignore_errors=True)
            (self.state / sub).mkdir(parents=True, exist_ok=True)

    def build(self, *extra: str) -> tuple[float, dict[str, float]]:
        argv = ["unshare", "--mount", "--propagation=private", "--fork", "--"]
        argv += ["sh", "-c", IN_TREE, "sh", str(self.tree), "mkosi", "-C", "/peer/conf"]
        argv += ["--output-directory=/peer/out", "--cache-directory=/peer/cache"]
        argv += ["--package-cache-dir=/peer/pkgcache", "--workspace-directory=/peer/work"]
        argv += [*extra, "build"]
        seconds, lines = run_logged(argv, self.log)
        return seconds, steps(lines, mkosi_step)

    def output(self, suffix: str) -> Path:
        return self.state / "out" / f"{IMAGE}{suffix}"

    def version(self) -> str:
        return dict(installed_versions(self.tree)).get("mkosi", "?")


@dataclass
class Ours:
    """dps-composer build into ``out`` with the stage cache ``cache``."""

    out: Path
    cache: Path
    log: Path
    seeded_tools: Path | None = None  # a tools tree to copy into a cold cache
    built: set[str] = field(default_factory=set)  # the last build's stages not from the cache

    def reset(self, cold: bool) -> None:
        if not cold:
            return
        shutil.rmtree(self.cache, ignore_errors=True)
        if self.seeded_tools is not None:
            dest = self.cache / "trees" / self.seeded_tools.name
            dest.parent.mkdir(parents=True)
            subprocess.run(["cp", "-a", "--", str(self.seeded_tools), str(dest)], check=True)

    def build(self, blueprint: Path = DEFAULT) -> tuple[float, dict[str, float]]:
        argv = [sys.executable, "-m", "composer", "build", str(blueprint), "-o", str(self.out)]
        seconds, lines = run_logged([*argv, "--cache-dir", str(self.cache)], self.log)
        self.built = {name for _, line in lines if (name := built_stage(line))}
        return seconds, steps(lines, ours_stage)

    def rebuild(self, table: Table, label: str, blueprint: Path = DEFAULT) -> None:
        """A sample of a rebuild that takes the root tree from the cache. Debian's mirrors
        publish a new index a few times a day, and an edit of the composer's code changes
        every key: a build after either installs a new root tree, which is no rebuild after a
        change of customization. Such a sample is set aside with the reason, and the next one,
        made on the new root, counts. (Run the benchmark from a clone nobody edits.)"""
        for _ in range(3):
            table.sample(label, partial(self.build, blueprint))
            if "root" not in self.built:
                return
            table.discard(label, "root tree rebuilt: the archive's index or the composer changed")
        raise SystemExit(f"{label}: the root tree was rebuilt three times in a row")


@dataclass
class Table:
    """Samples per measurement: seconds, load before and after, and per-step profiles."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def sample(self, label: str, fn: Callable[[], tuple[float, dict[str, float]]]) -> None:
        before = loadavg()
        seconds, profile = fn()
        after = loadavg()
        row = self.rows.setdefault(label, {"samples": []})
        entry: dict[str, Any] = {"seconds": round(seconds, 2), "load_before": before}
        entry["load_after"] = after
        if profile:
            entry["steps"] = profile
        row["samples"].append(entry)
        row["median_s"] = round(statistics.median(s["seconds"] for s in row["samples"]), 2)
        print(f"{label}: {seconds:.1f} s (load {before[0]:.2f} -> {after[0]:.2f})", flush=True)

    def discard(self, label: str, reason: str) -> None:
        """The last sample of ``label`` set aside (kept in the results with ``reason``)."""
        row = self.rows[label]
        entry = row["samples"].pop()
        row.setdefault("discarded", []).append({**entry, "reason": reason})
        values = [s["seconds"] for s in row["samples"]]
        row["median_s"] = round(statistics.median(values), 2) if values else 0.0
        print(f"{label}: {entry['seconds']:.1f} s set aside: {reason}", flush=True)


def build_phase(ours: list[tuple[str, Ours]], peer: Mkosi, runs: int, table: Table) -> None:
    """Cold, hostname change, no change: each measurement ours then mkosi, run after run."""
    for _ in range(runs):
        for name, side in ours:
            side.reset(cold=True)
            table.sample(f"cold build: {name}", side.build)
        peer.reset(cold=True)
        table.sample("cold build: mkosi", peer.build)
    work = ours[0][1].out.parent
    for i in range(runs):
        host = f"bench-{i}-{time.time_ns()}"
        bp = with_hostname(DEFAULT, work / "changed.toml", host)
        ours[0][1].rebuild(table, "rebuild after hostname change: ours", bp)
        rebuild = partial(peer.build, "--force", f"--hostname={host}")
        table.sample("rebuild after hostname change: mkosi", rebuild)
    ours[0][1].build()  # back to the default blueprint, for the no-change runs
    peer.build("--force")
    for _ in range(runs):
        ours[0][1].rebuild(table, "rebuild with no change: ours")
        table.sample("rebuild with no change: mkosi (--force)", lambda: peer.build("--force"))


def boot_to_login(image: Path, tools: BootTools, work: Path, smp: int, timeout: float) -> float:
    """Boot ``image`` (no TPM) until the serial console shows a login prompt; the seconds."""
    work.mkdir(parents=True, exist_ok=True)
    fw = select_firmware(ARCH, ARCH.machine, False, False, tools.firmware_dirs(), tools.root)
    vars_copy = work / "vars.fd"
    shutil.copyfile(fw.vars_template, vars_copy)
    console = work / "serial.log"
    console.write_bytes(b"")
    cfg = QemuConfig(
        firmware=fw,
        vars_copy=vars_copy,
        accel_args=tcg_args(ARCH.qemu),
        console_log=console,
        check_log=work / "check.log",
        image=image,
        smp=smp,
        credentials=dict(FIRSTBOOT),
        tools=tools,
    )
    argv = build_command(qemu_command(cfg), cfg)
    start = time.monotonic()
    with QemuProcess(argv, work / "qemu.log", env=tools.qemu_env()) as qemu:
        while LOGIN not in console.read_bytes():
            if qemu.poll() is not None or time.monotonic() - start > timeout:
                raise SystemExit(f"{image}: no login prompt: see {work}")
            time.sleep(0.25)
    return time.monotonic() - start


def untimed_steps(fn: Callable[[], float]) -> tuple[float, dict[str, float]]:
    return fn(), {}


def boot_phase(
    images: dict[str, Path], ours_qcow2: Path, work: Path, args: Any, table: Table
) -> dict[str, Any]:
    tools = ensure_boot_tools(cache_dir(), ARCH)
    for i in range(args.boot_runs):
        for name, image in images.items():
            keep = work / f"login-{name}-{i}"
            login = partial(boot_to_login, image, tools, keep, args.smp, 900.0)
            table.sample(f"boot to login: {name}", partial(untimed_steps, login))

        def verdict() -> tuple[float, dict[str, float]]:
            json_file = work / f"verdict-{time.time_ns()}.json"
            argv = [sys.executable, "-m", "composer", "boot", str(ours_qcow2)]
            log = work / "boot.log"
            seconds, _ = run_logged([*argv, "--json-file", str(json_file)], log, ok=(0, 1))
            verdict = json.loads(json_file.read_text())
            print(f"  verdict: {'PASS' if verdict.get('passed') else 'FAIL'}", flush=True)
            return seconds, verdict.get("timings", {})

        table.sample("boot to verdict (TPM): ours", verdict)
    return {"qemu_ovmf_swtpm": tools.origin, "vcpus": args.smp, "accel": "tcg"}


RATIOS = {
    "cold build": ("cold build: ours", "cold build: mkosi"),
    "cold build, tools tree kept": ("cold build: ours (tools tree kept)", "cold build: mkosi"),
    "rebuild after hostname change": (
        "rebuild after hostname change: ours",
        "rebuild after hostname change: mkosi",
    ),
    "rebuild with no change": (
        "rebuild with no change: ours",
        "rebuild with no change: mkosi (--force)",
    ),
    "boot to login": ("boot to login: ours", "boot to login: mkosi"),
}


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    out = {}
    for name, (a, b) in RATIOS.items():
        if a in rows and b in rows and rows[b]["median_s"]:
            out[f"{name}: ours / mkosi"] = round(rows[a]["median_s"] / rows[b]["median_s"], 2)
    return out


def sizes(ours_out: Path, peer: Mkosi) -> dict[str, Any]:
    manifest = json.loads((ours_out / f"{IMAGE}.manifest.json").read_text())

    def disk(raw: Path, qcow2: Path) -> dict[str, int]:
        st = raw.stat()
        return {"raw_allocated": st.st_blocks * 512, "qcow2": qcow2.stat().st_size}

    return {
        "ours": {"uki": manifest["uki"]["size"], "packages": len(manifest["packages"]),
                 **disk(ours_out / f"{IMAGE}.raw", ours_out / f"{IMAGE}.qcow2")},
        "mkosi": {"uki": peer.output(".efi").stat().st_size,
                  **disk(peer.output(".raw"), peer.output(".qcow2"))},
    }  # fmt: skip


ROWS = {  # row of the readable table: (ours, mkosi)
    **RATIOS,
    "boot to verdict (TPM)": ("boot to verdict (TPM): ours", ""),
}
CAVEATS = """\
- Packages: both sides download every package from deb.debian.org on a cold build (fresh
  caches on both sides), trixie main only (mkosi's `LocalMirror=`: without it mkosi adds the
  -updates, -security and -debug suites, which ours does not use).
- Package sets (dpkg status, 2026-12-03): mkosi's image 157 packages, ours 167. Only in
  mkosi's: systemd-boot-efi. Only in ours: apt (with libapt-pkg, liblz4, libstdc++, libxxhash,
  sqv, debian-archive-keyring), login, tzdata (mmdebstrap's minbase variant installs the
  priority-required packages; mkosi only what the list pulls in) and uki-virt, our UKI.
- Tools: mkosi runs from a trixie tree made before the run (not timed). Our "cold build"
  makes its own tools tree (mmdebstrap) inside the timed build; "tools tree kept" starts
  from a cold cache that holds only a copy of that tree, like mkosi's side.
- The UKI: ours is Debian's kernel with a generic dracut initrd (uki-virt, about 34 MiB);
  mkosi builds its default initrd as a nested image plus a kernel-modules initrd (136 MiB).
  mkosi's ESP is its own default 512 MiB (at ours, 256 MiB, repart's FAT32 was unreadable to
  OVMF); mkosi also writes its split artifacts (.efi, .initrd, .vmlinuz) beside the disk.
- Ours does more per build: the manifest with predicted PCR values, `qemu-img check` and
  sha256 of every output, the stage cache's records. mkosi writes no qcow2 itself: a
  post-output script converts its raw image with `qemu-img convert -c` (zstd, one thread);
  ours writes its zstd qcow2 with its own writer, on both cores (composer/image/qcow2.py).
- No change: mkosi has no output cache, so `--force` rebuilds from its incremental snapshot;
  without `--force` it refuses to overwrite its output.
- Boots: the same QEMU and OVMF (the boot tools tree), TCG, the same vCPUs and memory, no TPM,
  the same SMBIOS first-boot credentials, each qcow2 under a throw-away overlay; timed from
  QEMU's start to the first "login:" on ttyS0. "Boot to verdict" is `dps-composer boot` on
  ours (with swtpm and the check).
- 2 cores shared with other engineers' builds and TCG boots: see the load columns.
"""


def fmt_samples(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    return ", ".join(f"{s['seconds']:.0f}" for s in row["samples"])


def load_range(rows: list[dict[str, Any]]) -> str:
    loads = [
        v for r in rows for s in r["samples"] for v in (s["load_before"][0], s["load_after"][0])
    ]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else ""


def markdown(result: dict[str, Any]) -> str:
    rows: dict[str, dict[str, Any]] = result["measurements"]
    out = ["# dps-composer against mkosi, same content, same run", ""]
    out += [
        f"Run {result['started']} – {result['finished']}; mkosi {result['versions']['mkosi']}, "
        f"dps-composer {result['versions']['composer'][:12]}; "
        f"boots: {result.get('boot', {}).get('qemu_ovmf_swtpm', '-')}, "
        f"{result.get('boot', {}).get('vcpus', '-')} vCPUs, TCG.",
        "",
    ]
    out += ["Medians in seconds (samples), 1-minute load average before and after each sample.", ""]
    out += [
        "| | ours | mkosi | ours / mkosi | ours samples | mkosi samples | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (a, b) in ROWS.items():
        ra, rb = rows.get(a), rows.get(b)
        if ra is None and rb is None:
            continue
        ratio = result["ratios"].get(f"{name}: ours / mkosi", "")
        med = [f"{r['median_s']:.1f}" if r else "–" for r in (ra, rb)]
        load = load_range([r for r in (ra, rb) if r])
        out.append(
            f"| {name} | {med[0]} | {med[1]} | {ratio} | {fmt_samples(ra)} | "
            f"{fmt_samples(rb)} | {load} |"
        )
    for name, row in rows.items():
        for d in row.get("discarded", []):
            out.append(f"\nSet aside: {name}, {d['seconds']:.1f} s: {d['reason']}.")
    if "sizes" in result:
        s = result["sizes"]
        out += ["", "| sizes (bytes) | ours | mkosi |", "|---|---|---|"]
        for key in ("uki", "raw_allocated", "qcow2"):
            out.append(f"| {key} | {s['ours'][key]:,} | {s['mkosi'][key]:,} |")
    out += ["", "## Fairness", "", CAVEATS]
    out += [
        "## Rerun",
        "",
        "    .venv/bin/python bench/mkosi_peer.py --runs 3 --boot-runs 2",
        "",
        "(as root: mkosi runs chrooted into its tree in a private mount namespace; no loop "
        "device). The mkosi configuration is bench/mkosi-peer/; every sample, its load and "
        "its per-step profile are in mkosi-peer.json.",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--boot-runs", type=int, default=2)
    ap.add_argument("--smp", type=int, default=2, help="vCPUs for every boot to login")
    ap.add_argument("--phases", default="build,boot", type=lambda v: set(v.split(",")))
    ap.add_argument("--no-tools-kept", action="store_true", help="skip that cold variant")
    ap.add_argument("--out", type=Path, default=RESULTS / "mkosi-peer.json")
    ap.add_argument("--markdown", type=Path, default=RESULTS / "mkosi-peer.md")
    ap.add_argument("--base", type=Path, default=Path("/var/tmp/dps-mkosi-peer"))
    ap.add_argument("--render", action="store_true", help="only rewrite --markdown from --out")
    args = ap.parse_args()
    if args.render:
        args.markdown.write_text(markdown(json.loads(args.out.read_text())))
        return
    work = Path(tempfile.mkdtemp(prefix="dps-mkosi-peer-", dir="/var/tmp"))
    print(f"work: {work}", flush=True)
    peer = Mkosi(ensure_mkosi_tree(args.base), work / "mkosi.log")
    ours = [("ours", Ours(work / "out", work / "cache", work / "ours.log"))]
    if not args.no_tools_kept:
        kept = ensure_tools_tree(cache_dir(), ARCH)  # made here (untimed) when missing
        cached = Ours(work / "out", work / "cache", work / "ours.log", kept)
        ours.append(("ours (tools tree kept)", cached))
    table = Table()
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "build" in args.phases:
        build_phase(ours, peer, args.runs, table)
        result["sizes"] = sizes(ours[0][1].out, peer)
    if "boot" in args.phases:
        images = {"ours": work / "out" / f"{IMAGE}.qcow2", "mkosi": peer.output(".qcow2")}
        result["boot"] = boot_phase(images, images["ours"], work, args, table)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["versions"] = {"mkosi": peer.version(), "composer": git_head()}
    result["medians_s"] = {k: v["median_s"] for k, v in table.rows.items()}
    result["ratios"] = ratios(table.rows)
    result["measurements"] = table.rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.markdown.write_text(markdown(result))
    print(json.dumps({k: result[k] for k in ("medians_s", "ratios")}, indent=2))
    print(f"logs kept in {work}")


def git_head() -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, capture_output=True)
    return proc.stdout.strip()


if __name__ == "__main__":
    main()
