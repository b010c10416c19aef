"""Progress that works in a terminal and in a CI log: ``--progress=auto|plain|rich|none``.

``plain`` (the default when stderr is not a terminal): one line when each build stage starts
and one when it ends (its name, the seconds it took, cached or built, or FAILED), written and
flushed as it happens, never wrapped (a CI log is searched with grep). ``rich`` (the default on
a terminal): a spinner and elapsed time per stage. ``none``: nothing. ``-q`` means ``none``;
``-v`` also copies the build log (every tool's command line and output) to stderr.

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
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from composer.build.context import StageHook, StageReport
from composer.cli.common import err, say
from composer.core.lifetime import Interrupted
from composer.core.log import ROOT

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
    handler.setFormatter(logging.Formatter("%(message)s"))
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


@contextlib.contextmanager
def plain_stage(name: str) -> Iterator[StageReport]:
    """One line as the stage starts, one as it ends: grep-able, one stage per line."""
    report = StageReport(name)
    say(f"{_clock()} stage {name}: started")
    start = time.monotonic()
    try:
        yield report
    except (KeyboardInterrupt, Interrupted):
        say(f"{_clock()} stage {name}: interrupted after {time.monotonic() - start:.1f} s")
        raise
    except BaseException:
        say(f"{_clock()} stage {name}: FAILED after {time.monotonic() - start:.1f} s", "red")
        raise
    say(f"{_clock()} stage {name}: {report.state} in {time.monotonic() - start:.1f} s")


@contextlib.contextmanager
def rich_stages() -> Iterator[StageHook]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[StageReport]:
        report = StageReport(name)
        task = progress.add_task(name, total=1)
        try:
            yield report
        except BaseException:
            progress.update(task, description=f"{name}: FAILED")
            progress.stop_task(task)
            raise
        progress.update(task, completed=1, description=f"{name}: {report.state}")
        progress.stop_task(task)

    with progress:
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
        from composer.build.context import quiet_stage

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
