"""Fault injection for builds: a build started the way a user starts it, killed at a point its
stage log names, and what it leaves behind (processes, files, cache temporaries)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "blueprints/debian-uki-sdboot.toml"
TAG = "DPS_FAULT_TEST_TAG"


@dataclass(frozen=True)
class Env:
    """One cache, one package cache and one scratch directory shared by every build."""

    cache: Path
    work: Path
    base: Path

    def environ(self, tag: str = "") -> dict[str, str]:
        return {
            **os.environ,
            "DPS_COMPOSER_CACHE_DIR": str(self.cache),
            "DPS_COMPOSER_WORK_DIR": str(self.work),
            "DPS_COMPOSER_CACHE_MAX": "unlimited",
            TAG: tag,
        }

    def composer(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "composer", *args],
            cwd=ROOT,
            env=self.environ(),
            text=True,
            capture_output=True,
            timeout=1800,
        )
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc


def variant(env: Env, name: str, hostname: str, packages: tuple[str, ...] = ()) -> Path:
    """The default blueprint under another image name and host name, plus ``packages``."""
    text = DEFAULT.read_text()
    text = text.replace('name = "debian-uki-sdboot"', f'name = "{name}"', 1)
    text = text.replace('hostname = "dps-debian"', f'hostname = "{hostname}"')
    extra = "".join(f'\n[[packages]]\nname = "{p}"\n' for p in packages)
    path = env.base / f"{name}.toml"
    path.write_text(text.replace("[customizations]", extra + "\n[customizations]", 1))
    return path


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent, start time) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


Process = tuple[int, int]  # (pid, start time): a pid alone may be reused


def family(pid: int) -> set[Process]:
    """``pid`` and every descendant (PID-namespace members included: /proc shows them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[1], []).append(int(entry.name))
    found, todo = {pid}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {(p, st[2]) for p in found if (st := _stat(p)) is not None}


def tagged(tag: str) -> set[Process]:
    """Processes whose environment carries the build's tag (whatever their parent now)."""
    found = set()
    needle = f"{TAG}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and (st := _stat(int(entry.name))) is not None:
            found.add((int(entry.name), st[2]))
    return found


def alive(processes: set[Process]) -> set[Process]:
    return {
        (p, start)
        for p, start in processes
        if (st := _stat(p)) is not None and st[2] == start and st[0] != "Z"
    }


def wait_gone(processes: set[Process], deadline: float = 30.0) -> set[Process]:
    """The processes still alive after the kernel had ``deadline`` seconds to kill them (a
    SIGKILL chain through PR_SET_PDEATHSIG and a PID namespace is asynchronous)."""
    end = time.monotonic() + deadline
    while (left := alive(processes)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


@dataclass
class Kill:
    """What a kill point observed."""

    point: str
    signal: str
    stage: str  # the last stage the log had begun
    running: list[str]  # the build's processes at the kill
    returncode: int
    stderr: str
    survivors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        tools = sorted(set(self.running) - {"python", "python3"})
        return (
            f"{self.point}: {self.signal} in stage '{self.stage}' with {len(self.running)} "
            f"processes ({', '.join(tools)}); exit {self.returncode}; "
            f"survivors {self.survivors or 'none'}"
        )


class Build:
    """``dps-composer build`` in the background, in its own session (a safety net for the
    test's own clean-up: the kills under test only ever signal the composer's pid)."""

    def __init__(self, env: Env, blueprint: Path, out: Path) -> None:
        self.out = out
        self.name = blueprint.stem  # the image's name: the blueprints here are NAME.toml
        self.tag = uuid.uuid4().hex
        self.seen: set[Process] = set()
        self.said = env.base / f"{self.tag}.out", env.base / f"{self.tag}.err"
        STARTED.append(self)
        with open(self.said[0], "w") as stdout, open(self.said[1], "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "composer", "build", str(blueprint), "-o", str(out)],
                cwd=ROOT,
                env=env.environ(self.tag),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )

    def output(self) -> tuple[str, str]:
        return self.said[0].read_text(), self.said[1].read_text()

    def log(self) -> str:
        """The staging log while the build runs (the stage log: ``# stage: NAME`` lines)."""
        for path in self.out.glob(f".{self.name}.partial-*/{self.name}.build.log"):
            try:
                return path.read_text(errors="replace")
            except OSError:
                continue
        return ""

    def kept_log(self) -> str:
        path = self.out / f"{self.name}.build.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def running(self) -> set[str]:
        self.seen |= (now := family(self.proc.pid))
        return {_comm(p) for p, _ in now}

    def wait_for(self, marker: str, processes: str = "", timeout: float = 1200) -> None:
        """Until the log shows ``marker`` and, if given, one of ``processes`` (names separated
        by "|") runs in the build."""
        wanted = set(processes.split("|")) - {""}
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                out, err = self.output()
                notes = [ln for ln in self.kept_log().splitlines() if ln.startswith("# ")]
                raise AssertionError(
                    f"the build ended before {marker!r}: {out}\n{err}\n" + "\n".join(notes)
                )
            if marker in self.log() and (not wanted or wanted & self.running()):
                return
            time.sleep(0.02)
        raise AssertionError(f"no {marker!r} ({processes}) within {timeout} s:\n{self.log()}")

    def kill(self, point: str, sig: signal.Signals) -> Kill:
        members = family(self.proc.pid) | tagged(self.tag)
        names = sorted(_comm(p) for p, _ in members)
        stages = [ln[9:] for ln in self.log().splitlines() if ln.startswith("# stage: ")]
        os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=600)
        _, err = self.output()
        left = wait_gone(members | self.seen | tagged(self.tag))
        for p, _ in left:  # the test's own clean-up: nothing may stay after a failed test
            os.kill(p, signal.SIGKILL)
        return Kill(
            point,
            sig.name,
            stages[-1] if stages else "",
            names,
            self.proc.returncode,
            err,
            [f"{p} {_comm(p)}" for p, _ in left],
        )

    def finish(self, timeout: float = 1800) -> tuple[int, str, str]:
        self.proc.wait(timeout=timeout)
        out, err = self.output()
        sys.stdout.write(out)
        sys.stderr.write(err)
        return self.proc.returncode, out, err


STARTED: list[Build] = []


def stop_builds() -> None:
    """Kill builds a failed test left running, with everything they started."""
    while STARTED:
        build = STARTED.pop()
        if build.proc.poll() is None:
            members = family(build.proc.pid) | tagged(build.tag)
            for pid, _ in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            build.proc.wait()


def leftovers(env: Env, outs: list[Path]) -> list[Path]:
    """Every temporary a killed build can leave: scratch directories, staging directories,
    cache temporaries, and their lock files."""
    found = sorted(env.work.glob("dps-composer-*"))
    for out in outs:
        found += sorted(out.glob(".*.partial-*"))
    found += sorted(env.cache.glob(".tmp-*"))
    found += sorted(env.cache.glob("*/.tmp-*"))
    found += sorted(env.cache.glob("*/*/.tmp-*"))
    return found


def partial_files(out: Path) -> list[str]:
    """Visible files of the output directory that no complete build published: every file is
    a kept build log or listed, at its size, by the manifest of its image."""
    listed: dict[str, int | None] = {}
    for manifest in out.glob("*.manifest.json"):
        data = json.loads(manifest.read_text())
        listed[manifest.name] = None
        listed[f"{data['name']}.build.log"] = None
        for o in data["outputs"]:
            listed[o["file"]] = o["size"]
        if data.get("varstore"):
            listed[data["varstore"]["file"]] = None
        for user in data.get("generated_passwords") or ():
            listed[f"{data['name']}.{user}.password"] = None
    bad = []
    for path in out.iterdir():
        if path.name.startswith("."):
            continue
        size = listed.get(path.name, -1)
        if path.name.endswith(".build.log"):
            continue
        if size == -1 or (size is not None and path.stat().st_size != size):
            bad.append(path.name)
    return sorted(bad)


def initrd_names(raw: Path, manifest: dict[str, Any]) -> set[str]:
    """The paths in the initrd of the image's UKI (read from its ESP)."""
    from composer.image.read import read_vfat_file
    from composer.spec.pe import sections

    esp = manifest["disk"]["partitions"][0]["offset"]
    initrd = sections(read_vfat_file(raw, esp, manifest["uki"]["path"]))[".initrd"]
    cpio = subprocess.run(
        ["zstd", "-dc"], input=initrd.rstrip(b"\0"), capture_output=True, check=True
    ).stdout
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=cpio, capture_output=True).stdout
    return set(listing.decode().split())
