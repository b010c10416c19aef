"""Progress of long work inside a build stage (packages downloaded, a tool's phases), for
whoever shows it: the CLI installs a sink for each stage (plain lines in a CI log, a bar on a
terminal); with no sink installed, reporting costs nothing.

The code that does the work reports; it never prints. The sink is per thread of control (a
context variable), so a stage's reports reach only that stage's display.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Advance:
    """``what`` has reached ``done`` of ``total`` (bytes); ``total`` 0 when not known.
    A report with ``done == total`` ends the task."""

    what: str
    done: int
    total: int


@dataclass(frozen=True)
class Phase:
    """A tool has entered a named phase of its work (mmdebstrap: "installing packages…")."""

    text: str


Report = Advance | Phase
Sink = Callable[[Report], None]

_SINK: ContextVar[Sink | None] = ContextVar("dps_composer_progress_sink", default=None)


@contextlib.contextmanager
def shown_by(sink: Sink) -> Iterator[None]:
    """Reports made in this context (this thread) go to ``sink``."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def report(item: Report) -> None:
    sink = _SINK.get()
    if sink is not None:
        sink(item)


# apt's status lines (APT::Status-Fd): "dlstatus:<file>:<percent of bytes>:<text>"
_DLSTATUS = re.compile(r"^dlstatus:\d+:(?P<percent>\d+(?:\.\d+)?):")


class AptDownload:
    """Turns the lines of an apt command run with ``-oAPT::Status-Fd=1`` into Advance reports
    of ``total`` bytes; its ``line`` method is a tools.run line hook (a status line is
    consumed: the build log keeps apt's own "Get:" lines, not hundreds of percentages)."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total = what, total
        report(Advance(what, 0, total))

    def line(self, text: str) -> bool:
        found = _DLSTATUS.match(text)
        if found is None:
            return False
        percent = min(float(found.group("percent")), 100.0)
        report(Advance(self.what, round(self.total * percent / 100), self.total))
        return True

    def finish(self) -> None:
        report(Advance(self.what, self.total, self.total))


def phase_lines(prefix: str, suffix: str) -> Callable[[str], bool]:
    """A tools.run line hook: each line that starts with ``prefix`` and ends with ``suffix``
    is reported as a Phase (mmdebstrap: "I: extracting archives..."; its other "I:" lines
    are details); every line stays in the log."""

    def line(text: str) -> bool:
        text = text.rstrip()
        if text.startswith(prefix) and text.endswith(suffix):
            report(Phase(text.removeprefix(prefix)))
        return False

    return line


@dataclass
class StageReport:
    """What a progress display learns of a build stage: its name when it starts; when it
    ends, whether it was taken from the stage cache (``cached``) or made (``built``)."""

    name: str
    state: str = "built"  # built, cached


# around each stage that runs: progress lines or bars (composer/cli/progress.py)
StageHook = Callable[[str], contextlib.AbstractContextManager[StageReport]]


@contextlib.contextmanager
def quiet_stage(name: str) -> Iterator[StageReport]:
    yield StageReport(name)
