"""The scheduler of overlapping work: order by needs, the first failure wins and stops the
rest, an interrupted main thread stops every task's tools and waits for their clean-up, and a
task can end the run early. Real tools (sleep) below their reapers; no VM."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from composer.build.schedule import FINISHED, Schedule, Task
from composer.core import tools
from composer.core.errors import ComposerError
from composer.core.lifetime import Stopped, stop_scope
from composer.core.workdir import owned_dir

WAIT = 60.0  # a generous bound for events that come at once: a hang fails, never a timing


def task(name: str, run: Callable[[], str | None], *needs: str) -> Task:
    return Task(name, frozenset(needs), run)


class Journal:
    """What the tasks did, in order (thread-safe)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def step(self, name: str) -> Callable[[], None]:
        def run() -> None:
            self.add(f"{name} start")
            self.add(f"{name} end")

        return run


def sleeper(
    journal: Journal, name: str, started: threading.Event, work: Path
) -> Callable[[], None]:
    """A task that makes a temporary directory and runs a tool that would sleep a minute."""

    def run() -> None:
        with owned_dir(work, f"{name}-") as tmp:
            journal.add(f"{name} tmp {tmp}")
            started.set()
            try:
                tools.run(["sleep", "60"], cwd=tmp)
            except BaseException as exc:
                journal.add(f"{name} raised {type(exc).__name__}")
                raise
            journal.add(f"{name} slept")  # never: it is stopped

    return run


def sleeps_running() -> list[int]:
    """Our own descendants that run sleep (the tools of this test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if comm == "sleep" and stat[0] != "Z" and _descends(int(entry.name)):
            found.append(int(entry.name))
    return found


def _descends(pid: int) -> bool:
    me = os.getpid()
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if pid == me:
            return True
    return False


def test_tasks_start_when_their_needs_are_done() -> None:
    journal = Journal()
    schedule = Schedule(
        [
            task("a", journal.step("a")),
            task("b", journal.step("b"), "a"),
            task("c", journal.step("c"), "a", "b"),
        ]
    )
    schedule.run()
    lines = journal.lines
    assert lines.index("a end") < lines.index("b start") < lines.index("b end")
    assert lines.index("b end") < lines.index("c start")
    assert schedule.finished == ["a", "b", "c"]


def test_tasks_start_in_their_listed_order() -> None:
    """b could start at once, but a, listed first, waits for slow: b waits to start after a
    (the log shows the stages' starts in the order of the list)."""
    journal = Journal()
    schedule = Schedule(
        [
            task("slow", journal.step("slow")),
            task("a", journal.step("a"), "slow"),
            task("b", journal.step("b")),
        ]
    )
    schedule.run()
    assert schedule.started == ["slow", "a", "b"]
    assert journal.lines.index("slow end") < journal.lines.index("b start")


def test_independent_tasks_overlap() -> None:
    """Each of two tasks waits for the other to have started: only possible side by side."""
    a_in, b_in = threading.Event(), threading.Event()
    seen: list[bool] = []
    schedule: Schedule

    def meet(mine: threading.Event, other: threading.Event) -> Callable[[], None]:
        def run() -> None:
            mine.set()
            assert other.wait(WAIT), "the other task never ran alongside"
            seen.append(schedule.overlapping())

        return run

    schedule = Schedule([task("a", meet(a_in, b_in)), task("b", meet(b_in, a_in))])
    schedule.run()
    assert sorted(schedule.finished) == ["a", "b"]
    assert True in seen  # the log prefixes lines while both run
    assert not schedule.overlapping()


def test_the_first_failure_is_raised_and_stops_the_other_task(tmp_path: Path) -> None:
    journal = Journal()
    started = threading.Event()

    def fail() -> None:
        assert started.wait(WAIT)
        raise ComposerError("the package set cannot be installed")

    schedule = Schedule(
        [
            task("long", sleeper(journal, "long", started, tmp_path)),
            task("check", fail),
            task("later", journal.step("later"), "long"),
        ]
    )
    with pytest.raises(ComposerError, match="cannot be installed"):
        schedule.run()
    assert "long raised Stopped" in journal.lines  # its tool was stopped, not failed
    assert "long slept" not in journal.lines
    assert "later start" not in journal.lines  # what needed the stopped task never started
    assert sleeps_running() == []
    assert list(tmp_path.iterdir()) == []  # the stopped task's temporary is removed


def test_an_interrupted_main_thread_stops_every_task_and_waits_for_its_clean_up(
    tmp_path: Path,
) -> None:
    """Ctrl-C reaches the main thread only; both running tasks' tools are stopped and their
    temporaries removed before the interruption leaves ``run``."""
    journal = Journal()
    one, two = threading.Event(), threading.Event()

    def interrupt_when_both_run() -> None:
        if one.wait(WAIT) and two.wait(WAIT):
            os.kill(os.getpid(), signal.SIGINT)

    schedule = Schedule(
        [
            task("one", sleeper(journal, "one", one, tmp_path)),
            task("two", sleeper(journal, "two", two, tmp_path)),
        ]
    )
    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        schedule.run()
    assert {"one raised Stopped", "two raised Stopped"} <= set(journal.lines)
    assert sleeps_running() == []
    assert list(tmp_path.iterdir()) == []
    assert schedule.finished == []


def test_a_finished_task_ends_the_run_and_stops_the_early_work(tmp_path: Path) -> None:
    """The image found in the stage cache: the early stage still running is stopped, and no
    stage after the lookup starts."""
    journal = Journal()
    started = threading.Event()

    def lookup() -> str:
        assert started.wait(WAIT)
        return FINISHED

    schedule = Schedule(
        [
            task("early", sleeper(journal, "early", started, tmp_path)),
            task("lookup", lookup),
            task("root", journal.step("root"), "lookup"),
        ]
    )
    schedule.run()
    assert schedule.finished == ["lookup"]
    assert "early raised Stopped" in journal.lines and "root start" not in journal.lines
    assert sleeps_running() == []
    assert list(tmp_path.iterdir()) == []


def test_a_stopped_task_starts_no_further_tool() -> None:
    """A task between two tools when it is stopped: the next tool is refused."""
    between = threading.Event()
    journal = Journal()

    def two_tools() -> None:
        tools.run(["true"])
        between.set()
        scope = stop_scope()
        assert scope is not None
        for _ in range(int(WAIT / 0.01)):  # until the failure of the other task stops it
            if scope.stopped:
                break
            time.sleep(0.01)
        try:
            tools.run(["sleep", "60"])
        except Stopped:
            journal.add("refused")
            raise
        journal.add("ran")

    def fail() -> None:
        assert between.wait(WAIT)
        raise ComposerError("failed")

    with pytest.raises(ComposerError):
        Schedule([task("tools", two_tools), task("fail", fail)]).run()
    assert journal.lines == ["refused"]
    assert sleeps_running() == []


@pytest.mark.parametrize(
    ("tasks", "words"),
    [
        ([task("a", lambda: None, "b"), task("b", lambda: None, "a")], "wait for each other"),
        ([task("a", lambda: None, "nothing")], "unknown tasks"),
        ([task("a", lambda: None), task("a", lambda: None)], "repeat"),
    ],
)
def test_impossible_schedules_are_refused(tasks: list[Task], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Schedule(tasks).run()
