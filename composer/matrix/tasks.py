"""What a Dask worker runs for a task: `dps-composer build` or `dps-composer boot` as a
subprocess, its output in a log file, its outcome as plain data.

Why a subprocess and not the pipeline in-process: a Dask worker runs tasks in threads of a
thread pool, and the composer's clean-up relies on the main thread — SIGTERM and SIGHUP
become ``Interrupted`` there so that every ``finally`` (scratch trees, staging directories,
the reaper of each tool, QEMU and swtpm) runs, and ``PR_SET_PDEATHSIG`` is tied to the
thread that started a child. A CLI process has its own main thread and its own handlers:
it is started with ``die_with_parent(SIGTERM)``, so when the worker dies (closed, killed
with SIGKILL by a test, by the OOM killer) the build or boot gets SIGTERM and cleans up as
`build` and `boot` do on Ctrl-C; a timeout or a cancelled task sends it SIGTERM too. The
task's thread waits on the child, so the thread the death signal is tied to outlives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.core.lifetime import die_with_parent
from composer.core.paths import CACHE_DIR_ENV
from composer.manifest.load import manifest_name

CACHE_URL_ENV = "DPS_COMPOSER_CACHE_URL"  # composer/build/cache_shared.py
STOP_GRACE = 60.0  # seconds a stopped build or boot has to clean up before SIGKILL
BOOTABLE = ("qcow2", "raw", "vmdk", "vhdx", "vhd")

_children: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


def stop_children() -> None:
    """SIGTERM every build and boot this worker started, then wait for their clean-up."""
    with _lock:
        procs = list(_children)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_cli(args: list[str], log: Path, timeout: float, env: dict[str, str]) -> tuple[int, float]:
    """``python -m composer ARGS``, output to ``log``: (exit code, seconds)."""
    start = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "composer", *args],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "NO_COLOR": "1", "COLUMNS": "200"},
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        with _lock:
            _children.add(proc)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code = 124
        finally:
            with _lock:
                _children.discard(proc)
    return code, round(time.monotonic() - start, 1)


def _worker() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return re.sub(r"[^A-Za-z0-9._-]", "_", str(get_worker().name))
    except (ImportError, ValueError):
        return "local"


@dataclass(frozen=True)
class Caches:
    """Where a worker's builds and boots keep their caches: ``directory`` ("": the worker's
    own DPS_COMPOSER_CACHE_DIR or default), one subdirectory per worker with ``per_worker``
    (a LocalCluster then behaves like as many hosts), and the shared store's URL."""

    directory: str = ""
    per_worker: bool = False
    url: str = ""

    def env(self) -> dict[str, str]:
        env = {CACHE_URL_ENV: self.url} if self.url else {}
        if self.directory:
            where = Path(self.directory)
            if self.per_worker:
                where = where / f"worker-{_worker_name()}"
            env[CACHE_DIR_ENV] = str(where)
        return env


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _manifest(directory: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / manifest_name(name)).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build_argv(blueprint: Path, directory: Path, args: Sequence[str] = ()) -> list[str]:
    """The command line of a cell's build (after ``dps-composer``); ``args``: its key
    directories (``--keys``, ``--pcr-keys``)."""
    return ["build", str(blueprint), "-o", str(directory), "--progress=plain", *args]


def boot_argv(image: str, verdict: Path, directory: Path, timeout: float) -> list[str]:
    """The command line of a cell's boot (after ``dps-composer``): its verdict as JSON, its
    HTML report and its work files kept in the task's directory."""
    return [
        "boot",
        image,
        "--json-file",
        str(verdict),
        "--report",
        str(directory / "report"),
        "--keep",
        str(directory / "work"),
        "--progress=plain",
        "--timeout",
        str(timeout),
    ]


def run_build(
    task_id: str,
    blueprint: str,
    name: str,
    out: str,
    timeout: float,
    caches: Caches,
    build_args: Sequence[str],
    *_after: Any,
) -> dict[str, Any]:
    """Build the task's blueprint into OUT/builds/TASK (``_after``: results of the tasks it
    waits for, unused: the stage cache carries what they made)."""
    directory = Path(out) / "builds" / task_id
    directory.mkdir(parents=True, exist_ok=True)
    bp = directory / f"{name}.blueprint.toml"
    bp.write_text(blueprint)
    env = caches.env()
    log = directory / "build.cli.log"
    code, seconds = _run_cli(build_argv(bp, directory, build_args), log, timeout, env)
    manifest = _manifest(directory, name) if code == 0 else None
    image = None
    if manifest is not None:
        names = {o.get("format"): o.get("file") for o in manifest.get("outputs", [])}
        image = next((str(directory / names[f]) for f in BOOTABLE if names.get(f)), None)
    return {
        "task": task_id,
        "kind": "build",
        "exit_code": code,
        "seconds": seconds,
        "worker": _worker(),
        "cache_dir": env.get(CACHE_DIR_ENV, ""),
        "directory": str(directory),
        "log": str(log),
        "cache": (manifest or {}).get("cache", {}),
        "image": image,
        "tail": "" if code == 0 else _tail(log),
    }


def run_boot(
    task_id: str,
    image: str | None,
    out: str,
    timeout: float,
    caches: Caches,
    built: dict[str, Any] | None,
) -> dict[str, Any]:
    """Boot ``image`` (or the image the build task made) and judge it."""
    directory = Path(out) / "boots" / task_id
    directory.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"task": task_id, "kind": "boot", "worker": _worker()}
    if built is not None:
        image = built.get("image")
        if built.get("exit_code") != 0 or image is None:
            return {**result, "exit_code": None, "seconds": 0.0, "skipped": "the build failed"}
    verdict = directory / "verdict.json"
    log = directory / "boot.cli.log"
    args = boot_argv(str(image), verdict, directory, timeout)
    code, seconds = _run_cli(args, log, timeout + STOP_GRACE, caches.env())
    outcome = None
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError):
        data = json.loads(verdict.read_text())
        first = data[0] if isinstance(data, list) else data
        outcome = first.get("outcome")
    return {
        **result,
        "exit_code": code,
        "seconds": seconds,
        "image": image,
        "verdict": str(verdict),
        "outcome": outcome,
        "log": str(log),
        "tail": "" if code == 0 else _tail(log),
    }
