"""`dps-composer matrix run`: the matrix's task graph on a Dask cluster.

With no scheduler address a ``LocalCluster`` of worker *processes* is started (builds run
root tools and boots are single-threaded QEMU processes: threads would share one
interpreter's signal handling and gain nothing), sized by :func:`local_size`. Every worker
first reports its capabilities (composer/matrix/capability.py); build and boot tasks are
then restricted to the workers that can run them, and a kind of task that no worker can run
stops the run at once, naming what each worker lacks. Tasks are submitted under their graph
ids (``build-<image key>``), so a task the scheduler already knows is not run twice; a task
whose worker died runs again elsewhere (the scheduler's ``allowed-failures``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from composer.matrix import capability, tasks
from composer.matrix.graph import Graph, Task
from composer.matrix.model import Limits, MatrixInfraError

Say = Callable[[str], None]
ALLOWED_FAILURES = 2  # a task may lose this many workers before it counts as failed


def local_size(cores: int | None = None, tasks_wanted: int | None = None) -> int:
    """Workers for a LocalCluster: one per two cores (a build keeps two busy: mmdebstrap and
    dpkg, xz/zstd -T0, mke2fs; a TCG boot one), at least one, no more than there are tasks
    that can run at once."""
    n = max(1, (cores or os.cpu_count() or 1) // 2)
    return max(1, min(n, tasks_wanted)) if tasks_wanted else n


@dataclass
class Outcome:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> result
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: int = 0


@contextlib.contextmanager
def cluster(scheduler: str | None, workers: int | None, limits: Limits) -> Iterator[Any]:
    """A Dask client: of the cluster at ``scheduler``, or of a LocalCluster started here (and
    closed on the way out, also on Ctrl-C and SIGTERM: its worker processes, and with them
    every build and boot, get SIGTERM)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
            client.register_plugin(_StopChildren(), name="dps-composer-stop-children")
            yield client
        return
    n = workers or local_size()
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}),
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n,
            threads_per_worker=1 + limits.boots_per_worker,
            processes=True,
            resources={"build": 1, "boot": limits.boots_per_worker},
            dashboard_address=None,
            silence_logs=40,
        ) as local,
        Client(local) as client,  # type: ignore[no-untyped-call]
    ):
        client.register_plugin(_StopChildren(), name="dps-composer-stop-children")
        yield client


class _StopChildren(WorkerPlugin):
    """On a worker's way out: its builds and boots get SIGTERM and time to clean up."""

    def teardown(self, worker: Any) -> None:
        tasks.stop_children()


def check_workers(client: Any, graph: Graph) -> dict[str, dict[str, Any]]:
    """Every worker's capabilities; an error if a kind of task the graph has can run nowhere."""
    caps: dict[str, dict[str, Any]] = client.run(capability.probe)
    if not caps:
        raise MatrixInfraError("the cluster has no workers: start `dask worker SCHEDULER`")
    for kind in sorted({t.kind for t in graph.tasks}):
        if not capability.able(caps, kind):
            raise MatrixInfraError(
                f"no worker can run the matrix's {kind} tasks: {capability.why_not(caps, kind)}"
            )
    return caps


def _resources(client: Any, kind: str) -> dict[str, int] | None:
    """The task's resource when every worker declares it (a LocalCluster here, or workers
    started with ``--resources "build=1,boot=N"``), else none."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    if info and all(kind in (w.get("resources") or {}) for w in info.values()):
        return {kind: 1}
    return None


def submit(
    client: Any, graph: Graph, out: Path, caches: tasks.Caches, limits: Limits, caps: dict[str, Any]
) -> dict[str, Any]:
    """Every task of the graph as a future, dependencies as arguments."""
    futures: dict[str, Any] = {}
    for task in graph.tasks:
        after = [futures[a] for a in task.after]
        common = {
            "key": task.id,
            "pure": False,
            "retries": limits.retries,
            "workers": capability.able(caps, task.kind),
            "resources": _resources(client, task.kind),
        }
        if task.kind == "build":
            futures[task.id] = client.submit(
                tasks.run_build, task.id, task.blueprint, _name(task), str(out),
                limits.seconds("build"), caches, task.build_args, *after, **common,
            )  # fmt: skip
        else:
            futures[task.id] = client.submit(
                tasks.run_boot, task.id, task.image, str(out), limits.seconds("boot"), caches,
                after[0] if after else None, **common,
            )  # fmt: skip
    return futures


def _name(task: Task) -> str:
    import tomllib

    return str(tomllib.loads(task.blueprint or "").get("name", "image"))


def run_graph(
    client: Any, graph: Graph, out: Path, caches: tasks.Caches, limits: Limits, say: Say
) -> Outcome:
    """Run every task; each result as it comes (``say``: one progress line per task and per
    finished cell). A task that fails (its workers kept dying) is a result too."""
    from distributed import as_completed

    caps = check_workers(client, graph)
    outcome = Outcome(capabilities=caps, workers=len(caps))
    for addr, c in sorted(caps.items()):
        say(f"worker {addr} on {c['host']}: build {'yes' if c['build'] else 'no'}, boot "
            f"{'yes' if c['boot'] else 'no'} ({c['accel']})")  # fmt: skip
    futures = submit(client, graph, out, caches, limits, caps)
    done_cells: set[str] = set()
    for future in as_completed(list(futures.values())):  # type: ignore[no-untyped-call]
        task_id = str(future.key)
        try:
            result = future.result()
        except Exception as exc:  # the task's workers kept dying, or it raised: its result
            result = {"task": task_id, "kind": graph.task(task_id).kind, "exit_code": None,
                      "error": f"{type(exc).__name__}: {exc}", "seconds": 0.0}  # fmt: skip
        outcome.results[task_id] = result
        say(progress_line(graph.task(task_id), result))
        for cell in graph.cells:
            mine = graph.cell_tasks[cell.id]
            if cell.id not in done_cells and all(t in outcome.results for t in mine):
                done_cells.add(cell.id)
                say(f"cell {cell.id}: {cell_status(graph, cell.id, outcome.results)[0]}")
    return outcome


def progress_line(task: Task, result: dict[str, Any]) -> str:
    cells = ", ".join(task.cells)
    where = result.get("worker", "?")
    if result.get("error"):
        return f"{task.id} ({cells}): ERROR {result['error']}"
    if result.get("skipped"):
        return f"{task.id} ({cells}): skipped: {result['skipped']}"
    code = result.get("exit_code")
    if task.kind == "build":
        hits = [s for s, state in (result.get("cache") or {}).items() if state == "hit"]
        what = "built" if code == 0 else f"build failed (exit {code}), log {result.get('log')}"
        cached = f"; from the stage cache: {', '.join(hits)}" if hits else ""
        return f"{task.id} ({cells}): {what} in {result.get('seconds')} s on {where}{cached}"
    verdict = result.get("outcome") or f"exit {code}"
    return f"{task.id} ({cells}): boot {verdict} in {result.get('seconds')} s on {where}"


def cell_status(graph: Graph, cell_id: str, results: dict[str, dict[str, Any]]) -> tuple[str, int]:
    """(PASS, FAIL, ERROR or SKIPPED; the exit code the cell alone would give)."""
    for task_id in graph.cell_tasks[cell_id]:
        r = results.get(task_id)
        if r is None:
            return "SKIPPED", 3
        if r.get("error"):
            return "ERROR", 4 if r.get("kind") == "boot" else 3
        if r.get("skipped"):
            return "SKIPPED", 3
        code = r.get("exit_code")
        if code == 1 and r.get("kind") == "boot":
            return "FAIL", 1
        if code != 0:  # a boot that timed out or was killed: the host's fault, 4
            return "ERROR", code if code in (2, 3, 4) else (4 if r.get("kind") == "boot" else 3)
    return "PASS", 0
