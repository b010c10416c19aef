"""`dps-composer matrix run` on real Dask clusters: a LocalCluster of two worker processes,
then a separately started `dask scheduler` and two `dask worker` processes (the path a real
cluster takes), each worker with its own cache directory and all of them sharing one stage
store (``--cache-url file:///…``); then a worker killed mid-build.

The matrix: four variants of the default blueprint that differ only in what the image
stages read (host name, formats), so all four share the root tree; one cell is booted.
Each worker's fresh cache starts with this machine's tools tree, uki-virt repository,
package cache and secret key (what a provisioned build host has), not with stage entries.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from composer.core import paths
from composer.judge.emulator import choose_boot_tools
from composer.spec.arch import ARCHES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests" / "data" / "junit.xsd"))
# what a provisioned build host's cache has besides stage entries
SEED = ("trees", "uki-virt", "archives", "apt-index", "secret.key", "kvm-probe.json")

MATRIX = """
[matrix]
name = "{name}"
base = "base.toml"

[[axis]]
name = "host"
values = [{{ name = "{a}", hostname = "{a}-host" }}, {{ name = "{b}", hostname = "{b}-host" }}]

[[axis]]
name = "fmt"
values = [{{ name = "qcow2", formats = ["qcow2"] }}, {{ name = "raw", formats = ["raw", "qcow2"] }}]

[limits]
boot_timeout = "15 min"
retries = 1
"""
BOOT_ONE = '\n[[actions]]\nwhere = {{ host = "{a}", fmt = "qcow2" }}\naction = "build+boot"\n'


def _seed(cache: Path) -> Path:
    """A fresh cache directory with what a provisioned build host has."""
    warm = paths.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for name in SEED:
        if (warm / name).exists():
            flags = "-al" if name == "archives" else "-a"  # .debs are renamed in, never changed
            subprocess.run(["cp", flags, "--", str(warm / name), str(cache / name)], check=True)
    return cache


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    top = Path(os.environ.get("DPS_COMPOSER_WORK_DIR", "/var/tmp"))
    where = tmp_path_factory.mktemp("matrix", numbered=True)
    big = Path(top) / f"dps-matrix-test-{os.getpid()}"
    big.mkdir(exist_ok=True)
    (where / "big").symlink_to(big)
    shutil.copy(ROOT / "blueprints" / "debian-uki-sdboot.toml", where / "base.toml")
    yield where
    shutil.rmtree(big, ignore_errors=True)


def _matrix(place: Path, name: str, a: str, b: str, boot: bool) -> Path:
    path = place / f"{name}.toml"
    path.write_text(MATRIX.format(name=name, a=a, b=b) + (BOOT_ONE.format(a=a) if boot else ""))
    return path


def _run(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 1500
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "composer", "matrix", "run", *map(str, args)],
        cwd=ROOT, text=True, capture_output=True, timeout=timeout, env=env,
    )  # fmt: skip
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done


def _build_logs(out: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted(out.glob("builds/*/*.build.log"))}


def _manifests(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("builds/*/*.manifest.json"))]


def _check_images(out: Path) -> None:
    """Every output is there, with the sha256 its manifest lists, and qcow2 images are sound."""
    import hashlib

    for m_path in sorted(out.glob("builds/*/*.manifest.json")):
        manifest = json.loads(m_path.read_text())
        for o in manifest["outputs"]:
            f = m_path.parent / o["file"]
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            assert h.hexdigest() == o["sha256"], f
            if o["format"] == "qcow2":
                subprocess.run(["qemu-img", "check", "-q", str(f)], check=True)


@pytest.fixture(scope="module")
def provisioned(default_image: Path) -> None:
    """This machine's cache holds what _seed copies: the default image's build made the tools
    tree, the uki-virt repository, the package cache and the apt index (the session's build,
    shared with the other test files), and the boot tools tree is made if a boot would take
    one. Without them each worker would make its own, cold, whatever ran before."""
    choose_boot_tools("", ARCHES["x86_64"], print)


@pytest.fixture(scope="module")
def worker_caches(place: Path, provisioned: None) -> dict[str, Path]:
    """Two LocalCluster workers' caches (``--cache-per-worker``) and the shared store."""
    caches = place / "big" / "caches"
    for worker in ("worker-0", "worker-1"):
        _seed(caches / worker)
    return {"caches": caches, "store": place / "big" / "store"}


@pytest.fixture(scope="module")
def local_run(place: Path, worker_caches: dict[str, Path]) -> dict[str, Any]:
    caches, store = worker_caches["caches"], worker_caches["store"]
    out = place / "big" / "local"
    junit = place / "local.junit.xml"
    env = {**os.environ, paths.CACHE_DIR_ENV: str(caches)}
    done = _run(
        _matrix(place, "local", "alpha", "beta", boot=True), "--workers", "2",
        "--cache-per-worker", "--cache-url", store.as_uri(), "--junit", junit, "-o", out,
        env=env,
    )  # fmt: skip
    return {"done": done, "out": out, "junit": junit, "store": store, "caches": caches}


def test_local_cluster_builds_every_cell_and_boots_one(local_run: dict[str, Any]) -> None:
    done, out = local_run["done"], local_run["out"]
    assert done.returncode == 0, done.stderr[-3000:]
    cells = {p.parent.name: json.loads(p.read_text()) for p in out.glob("cells/*/report.json")}
    assert sorted(cells) == ["alpha-qcow2", "alpha-raw", "beta-qcow2", "beta-raw"]
    assert {c["status"] for c in cells.values()} == {"PASS"}
    booted = [c for c in cells.values() if c["action"] == "build+boot"]
    assert len(booted) == 1
    boot = next(t for t in booted[0]["tasks"].values() if t["kind"] == "boot")
    verdict = json.loads(Path(boot["verdict"]).read_text())
    assert verdict["outcome"] == "pass" and verdict["passed"] is True
    # per-cell progress lines, on two worker processes
    for cell in cells:
        assert f"cell {cell}: PASS" in done.stderr
    assert len(set(re.findall(r"worker (tcp://\S+) on", done.stderr))) == 2
    _check_images(out)


def test_cells_sharing_the_root_build_it_once(local_run: dict[str, Any]) -> None:
    logs = _build_logs(local_run["out"])
    assert len(logs) == 4
    stored = [b for b, text in logs.items() if re.search(r"stage cache root \w+: storing", text)]
    assert len(stored) == 1, stored  # built once ...
    others = [t for b, t in logs.items() if b not in stored]
    # ... and every other build took it: from its worker's cache or pulled from the store
    assert all(re.search(r"stage cache root \w+: hit", t) for t in others)
    assert any("pulled from the shared store" in t for t in others)
    # the planned graph had the three others wait for the first build of the root
    assert len({m["cache"]["root"] for m in _manifests(local_run["out"])}) == 2  # miss, hit


def test_junit_has_one_valid_case_per_cell(local_run: dict[str, Any]) -> None:
    SCHEMA.validate(str(local_run["junit"]))
    text = local_run["junit"].read_text()
    assert sorted(re.findall(r'<testcase name="([^"]+)"', text)) == [
        "alpha-qcow2", "alpha-raw", "beta-qcow2", "beta-raw",
    ]  # fmt: skip
    assert "<failure" not in text and "<error" not in text


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


@pytest.fixture()
def dask_cluster(place: Path, provisioned: None) -> Iterator[tuple[str, list[Path]]]:
    """`dask scheduler` and two `dask worker` processes, each worker with a fresh cache."""
    dask = str(Path(sys.executable).parent / "dask")
    sched_file = place / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != paths.CACHE_DIR_ENV}
    procs = [_start([dask, "scheduler", "--scheduler-file", str(sched_file), "--port", "0",
                     "--no-dashboard"], env, place / "scheduler.log")]  # fmt: skip
    caches = []
    try:
        for i in range(2):
            while not sched_file.exists():
                time.sleep(0.2)
            cache = _seed(place / "big" / "dask-caches" / f"w{i}")
            caches.append(cache)
            procs.append(_start(
                [dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "2",
                 "--resources", "build=1,boot=1", "--name", f"w{i}", "--no-dashboard"],
                {**env, paths.CACHE_DIR_ENV: str(cache)}, place / f"worker{i}.log",
            ))  # fmt: skip
        address = json.loads(sched_file.read_text())["address"]
        yield address, caches
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_dask_scheduler_and_workers_take_the_images_from_the_shared_cache(
    local_run: dict[str, Any], dask_cluster: tuple[str, list[Path]], place: Path
) -> None:
    """The same four images, built-only, on workers whose caches have no stage entries:
    every image comes out of the shared store, checked."""
    address, caches = dask_cluster
    out = place / "big" / "dask"
    env = {k: v for k, v in os.environ.items() if k != paths.CACHE_DIR_ENV}
    done = _run(
        _matrix(place, "local", "alpha", "beta", boot=False), "--scheduler", address,
        "--cache-url", local_run["store"].as_uri(), "-o", out, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    manifests = _manifests(out)
    assert len(manifests) == 4 and all(m["cache"]["image"] == "hit" for m in manifests)
    logs = _build_logs(out)
    assert all(
        re.search(r"stage cache image \w+: pulled from the shared store", t) for t in logs.values()
    )
    assert not any(re.search(r"stage cache \w+ \w+: storing", t) for t in logs.values())
    # the workers' own caches now hold the entries they pulled
    assert sum(len(list((c / "stages" / "image").glob("*/entry.json"))) for c in caches) == 4
    _check_images(out)


def _children_of(pid: int) -> list[int]:
    """Children started by any thread of ``pid`` (Dask starts workers and tasks in threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children_of(pid):
        found += [child, *_descendants(child)]
    return found


def test_a_worker_killed_mid_build_and_the_matrix_still_completes(
    worker_caches: dict[str, Path], place: Path
) -> None:
    """SIGKILL to the worker process running a build: the build (its child) gets SIGTERM
    and cleans up, the scheduler runs the task again on a worker, the images are sound."""
    out = place / "big" / "killed"
    env = {**os.environ, paths.CACHE_DIR_ENV: str(worker_caches["caches"])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", "matrix", "run",
         str(_matrix(place, "killed", "gamma", "delta", boot=False)), "--workers", "2",
         "--cache-per-worker", "--cache-url", worker_caches["store"].as_uri(), "-o", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for pid in _descendants(proc.pid):
            if " composer build " in f" {_cmdline(pid)} ":
                time.sleep(3)  # well into the build
                worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                os.kill(worker, signal.SIGKILL)
                killed = (worker, pid)
                break
        time.sleep(0.5)
    stdout, stderr = proc.communicate(timeout=1500)
    sys.stderr.write(stderr)
    assert killed is not None, "no build was seen running"
    assert proc.returncode == 0, stderr[-3000:]
    # the killed worker's build went away with it
    assert not Path(f"/proc/{killed[1]}").exists() or "composer build" not in _cmdline(killed[1])
    cells = {p.parent.name: json.loads(p.read_text()) for p in out.glob("cells/*/report.json")}
    assert len(cells) == 4 and {c["status"] for c in cells.values()} == {"PASS"}
    _check_images(out)


def test_sigterm_stops_the_cluster_and_leaves_no_process_behind(
    worker_caches: dict[str, Path], place: Path
) -> None:
    """SIGTERM to `matrix run` while a build runs: exit 143, the LocalCluster's workers and
    their builds gone, no staging directory left."""
    out = place / "big" / "stopped"
    env = {**os.environ, paths.CACHE_DIR_ENV: str(worker_caches["caches"])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", "matrix", "run",
         str(_matrix(place, "stopped", "eps", "zeta", boot=False)), "--workers", "2",
         "--cache-per-worker", "-o", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: set[int] = set()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        found = _descendants(proc.pid)
        seen.update(found)
        if any(" composer build " in f" {_cmdline(p)} " for p in found):
            time.sleep(3)
            seen.update(_descendants(proc.pid))
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.5)
    _, stderr = proc.communicate(timeout=300)
    sys.stderr.write(stderr)
    assert proc.returncode == 143, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    time.sleep(2)  # reaped children of killed parents go to init; give it a moment
    alive = [p for p in seen if Path(f"/proc/{p}").exists() and _cmdline(p)]
    assert alive == [], [_cmdline(p) for p in alive]
    assert not list(out.glob("builds/*/.*.partial-*"))
