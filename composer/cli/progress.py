"""Progress that works in a terminal and in a CI log: ``--progress=auto|plain|rich|none``.

``plain`` (the default when stderr is not a terminal): one line when each build stage starts
and one when it ends (its name, the seconds it took, cached or built, or FAILED), written and
flushed as it happens, never wrapped (a CI log is searched with grep). ``rich`` (the default on
a terminal): a spinner and elapsed time per stage. ``none``: nothing. ``-q`` means ``none``;
``-v`` also copies the build log (every tool's command line and output) to stderr. Inside a
stage, package downloads show their progress (plain: a line at the start, at each quarter and at
the end; rich: a bar) and mmdebstrap its phases (composer/core/progress.py).

``boot`` gets a heartbeat: after ``HEARTBEAT`` seconds without a line, one line with the time
so far and the last milestone, so a CI job never looks hung while a VM works under TCG.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from composer.cli.common import err, say
from composer.core import progress
from composer.core.lifetime import Interrupted, Stopped
from composer.core.log import ROOT, LineFormatter
from composer.core.progress import StageHook, StageReport
from composer.core.units import human_size

HEARTBEAT = 30.0  # seconds of silence before `boot` says it is still running


class ProgressMode(StrEnum):
    auto = "auto"
    plain = "plain"
    rich = "rich"
    none = "none"


ProgressOption = Annotated[
    ProgressMode,
    typer.Option(
        "--progress",
        help="auto (rich on a terminal, plain lines otherwise), plain, rich or none",
    ),
]
QuietOption = Annotated[
    bool, typer.Option("-q", "--quiet", help="No progress; only results and errors")
]
VerboseOption = Annotated[
    bool,
    typer.Option("-v", "--verbose", help="Also every tool's command line and output on stderr"),
]


def resolve_mode(mode: ProgressMode, quiet: bool) -> ProgressMode:
    if quiet:
        return ProgressMode.none
    if mode is ProgressMode.auto:
        return ProgressMode.rich if err.is_terminal else ProgressMode.plain
    return mode


@contextlib.contextmanager
def verbose_log(verbose: bool) -> Iterator[None]:
    """With ``-v``: the composer's log (composer/core/log.py) on stderr too."""
    if not verbose:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    logger = logging.getLogger(ROOT)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


class PlainReports:
    """A stage's progress reports as plain lines: each phase; a download when it starts, at
    each quarter and when it ends (a CI log gets a handful of lines, not a stream)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._quarters: dict[str, int] = {}

    def __call__(self, item: progress.Report) -> None:
        if isinstance(item, progress.Phase):
            say(f"{_clock()} stage {self.stage}: {item.text}")
            return
        quarter = 4 * item.done // item.total if item.total else 4
        if self._quarters.get(item.what, -1) >= quarter:
            return
        self._quarters[item.what] = quarter
        say(
            f"{_clock()} stage {self.stage}: {item.what}: "
            f"{100 * quarter // 4}% of {human_size(item.total)}"
        )


@contextlib.contextmanager
def plain_stage(name: str) -> Iterator[StageReport]:
    """One line as the stage starts, one as it ends: grep-able, one stage per line."""
    report = StageReport(name)
    say(f"{_clock()} stage {name}: started")
    start = time.monotonic()
    try:
        with progress.shown_by(PlainReports(name)):
            yield report
    except (KeyboardInterrupt, Interrupted, Stopped) as exc:
        why = "stopped" if isinstance(exc, Stopped) else "interrupted"
        say(f"{_clock()} stage {name}: {why} after {time.monotonic() - start:.1f} s")
        raise
    except BaseException:
        say(f"{_clock()} stage {name}: FAILED after {time.monotonic() - start:.1f} s", "red")
        raise
    say(f"{_clock()} stage {name}: {report.state} in {time.monotonic() - start:.1f} s")


class _SizedBar(ProgressColumn):
    """A bar for the tasks that have a size (downloads); nothing for a stage's row."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = BarColumn(bar_width=24)

    def render(self, task: Task) -> RenderableType:
        return self._bar.render(task) if task.fields.get("sized") else Text("")


class RichReports:
    """A stage's progress reports on its rich display: a phase in the stage's row, a download
    as a row of its own with a bar."""

    def __init__(self, bars: Progress, stage: str, task: TaskID) -> None:
        self.bars, self.stage, self.task = bars, stage, task
        self._rows: dict[str, TaskID] = {}

    def __call__(self, item: progress.Report) -> None:
        if isinstance(item, progress.Phase):
            self.bars.update(self.task, description=f"{self.stage}: {item.text}")
            return
        row = self._rows.get(item.what)
        if row is None:
            row = self.bars.add_task("", total=max(item.total, 1), sized=True)
            self._rows[item.what] = row
        text = f"  {item.what}: {human_size(item.done)} of {human_size(item.total)}"
        self.bars.update(row, completed=item.done, description=text)
        if item.done >= item.total:
            self.bars.stop_task(row)


@contextlib.contextmanager
def rich_stages() -> Iterator[StageHook]:
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        _SizedBar(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[StageReport]:
        report = StageReport(name)
        task = bars.add_task(name, total=1)
        try:
            with progress.shown_by(RichReports(bars, name, task)):
                yield report
        except BaseException as exc:
            why = "stopped" if isinstance(exc, Stopped) else "FAILED"
            bars.update(task, description=f"{name}: {why}")
            bars.stop_task(task)
            raise
        bars.update(task, completed=1, description=f"{name}: {report.state}")
        bars.stop_task(task)

    with bars:
        yield stage


@contextlib.contextmanager
def stage_progress(mode: ProgressMode) -> Iterator[StageHook]:
    """The build's stage hook for ``mode`` (already resolved: not auto)."""
    if mode is ProgressMode.rich:
        with rich_stages() as hook:
            yield hook
    elif mode is ProgressMode.plain:
        yield plain_stage
    else:
        from composer.core.progress import quiet_stage

        yield quiet_stage


_MILESTONE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s+([\w-]+):")


class Heartbeat:
    """Wraps a boot's line printer (each line shown after ``prefix``); after ``every`` seconds
    without a line it prints one: how long the boot has run and its last milestone (the
    ``  12.3s  kernel: …`` lines)."""

    def __init__(
        self, show: Callable[[str], None], every: float = HEARTBEAT, prefix: str = ""
    ) -> None:
        self._show, self._every, self._prefix = show, every, prefix
        self._start = self._last = time.monotonic()
        self._milestone = "none yet"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def line(self, text: str) -> None:
        with self._lock:
            self._last = time.monotonic()
            found = _MILESTONE.match(text)
            if found:
                self._milestone = f"{found.group(2)} at {found.group(1)} s"
            self._show(self._prefix + text)

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self._every / 4)):
            with self._lock:
                now = time.monotonic()
                if now - self._last >= self._every:
                    self._last = now
                    self._show(
                        f"{self._prefix}still running: {now - self._start:.0f} s so far, "
                        f"last milestone: {self._milestone}"
                    )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
