"""Work that may overlap: tasks run each in a thread of its own as soon as the tasks it needs
are done and those listed before it have started (build stages, composer/build/pipeline.py;
the work is external tools, so threads overlap it).

The main thread only waits, because it is the one that gets signals (composer/core/lifetime.py):
when it is interrupted, or a task fails, every running task is stopped through its
:class:`~composer.core.lifetime.StopScope` (its tools killed, no new tool started), each thread
is waited for while it unwinds (its temporaries removed), and then the interruption or the
first failure is raised. A task's tools die with its thread (``PR_SET_PDEATHSIG``), and the
thread outlives them: it runs until its task has returned or raised. A task that returns
``FINISHED`` ends the run early: the tasks still running are stopped, the others never start
(an image taken whole from the stage cache needs no further stage).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from composer.core.lifetime import StopScope, stoppable

FINISHED = "finished"  # what a task returns to end the run: nothing more is needed
WAIT = 0.5  # seconds the main thread waits at a time (a signal's handler runs between waits)


@dataclass(frozen=True)
class Task:
    name: str
    needs: frozenset[str]  # tasks that must be done first
    run: Callable[[], str | None]


@dataclass
class _Running:
    thread: threading.Thread
    scope: StopScope


class Schedule:
    """One run of tasks (see the module docstring); :meth:`overlapping` says whether more than
    one runs now (the build log then prefixes each line with its stage)."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names repeat: {names}")
        for t in tasks:
            unknown = t.needs - set(names)
            if unknown:
                raise ValueError(f"task {t.name} needs unknown tasks {sorted(unknown)}")
        self._pending = list(tasks)
        self._running: dict[str, _Running] = {}
        self._done: queue.Queue[tuple[str, BaseException | None, str | None]] = queue.Queue()
        self.started: list[str] = []  # in the order they started
        self.finished: list[str] = []  # in the order they ended

    def overlapping(self) -> bool:
        return len(self._running) > 1

    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    def run(self) -> None:
        """Every task, or until one returns FINISHED; raises the first failure."""
        try:
            self._run()
        finally:
            self._stop_all()

    def _run(self) -> None:
        while self._pending or self._running:
            self._start_ready()
            if not self._running:
                stuck = {t.name: sorted(t.needs) for t in self._pending}
                raise ValueError(f"tasks wait for each other: {stuck}")
            name, error, result = self._next_end()
            self._running.pop(name).thread.join()
            if error is not None:
                raise error
            self.finished.append(name)
            if result == FINISHED:
                self._pending.clear()
                return

    def _start_ready(self) -> None:
        """Start the pending tasks whose needs are done, in their listed order: one that
        must wait holds back those listed after it (logs and progress show the stages'
        starts in the order of the list)."""
        while self._pending and self._pending[0].needs <= set(self.finished):
            task = self._pending.pop(0)
            scope = StopScope()
            thread = threading.Thread(
                target=self._work, args=(task, scope), name=f"task-{task.name}"
            )
            self._running[task.name] = _Running(thread, scope)
            self.started.append(task.name)
            thread.start()

    def _work(self, task: Task, scope: StopScope) -> None:
        error: BaseException | None = None
        result = None
        try:
            with stoppable(scope):
                result = task.run()
        except BaseException as exc:  # handed to the main thread, which raises it
            error = exc
        self._done.put((task.name, error, result))

    def _next_end(self) -> tuple[str, BaseException | None, str | None]:
        while True:  # short waits: the main thread's signal handlers run between them
            with contextlib.suppress(queue.Empty):
                return self._done.get(timeout=WAIT)

    def _stop_all(self) -> None:
        """Stop what still runs and wait for each thread to unwind; what they raise then
        (Stopped, a killed tool's error) is the consequence, not the cause, and is dropped."""
        for running in self._running.values():
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: the clean-up goes on
                running.scope.stop()
        for name, running in list(self._running.items()):
            _join(running.thread)
            del self._running[name]
        with contextlib.suppress(queue.Empty):
            while True:
                self._done.get_nowait()


def _join(thread: threading.Thread) -> None:
    """Wait for a stopped thread; a second Ctrl-C meanwhile does not leave it running."""
    while thread.is_alive():
        with contextlib.suppress(KeyboardInterrupt):
            thread.join(WAIT)
