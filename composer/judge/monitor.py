"""Watching a running VM: both serial channels, QEMU, its helpers (swtpm) and the deadline.

The watch ends at the first of: a whole check record (plus a grace for the guest to power
off; a throw-away boot's ends with the console summary that follows the record), a fatal sign
or a console prompt (plus a short grace: the next lines usually explain it), QEMU's exit, a
helper's death, a damaged check record, a login prompt without a check (images that cannot run
it), no login prompt long after multi-user.target where only the console is judged, or the
deadline. The deadline counts only the time the VM could run: the
seconds its vCPU waited for a host CPU are added to it (composer/judge/hostload.py), up to
``STRETCH`` times the timeout, after which the host, not the image, is said to be too slow.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from composer.core.lifetime import Interrupted
from composer.judge.hostload import CpuWait
from composer.judge.record import CHECK_PREFIX, Record, RecordReader
from composer.judge.serial import SerialEvent, SerialScanner, SerialTail
from composer.judge.verdict import Expectations, Verdict, parse_check_payload

Console = Callable[[str], None]
POLL_INTERVAL = 0.25
POWEROFF_GRACE = 20.0  # after the check line: time for the guest to power off by itself
# after the check line of a throw-away boot (overlay disk, fresh TPM): time for the console
# summary that follows it; what the guest does while powering off is neither judged nor kept.
# The summary's last line ends it sooner (images whose check prints it: "summary" milestone).
THROWAWAY_GRACE = 2.0
FATAL_GRACE = 3.0  # after a fatal sign: keep reading, the next lines usually explain it
STRETCH = 3.0  # the deadline grows with the VM's CPU waits, up to this many times the timeout
CHECK_MARK = CHECK_PREFIX + "(result received)"  # scanned instead of the JSON itself


class Process(Protocol):
    @property
    def pid(self) -> int | None: ...

    def poll(self) -> int | None: ...


@dataclass(frozen=True)
class Helper:
    """A process the VM needs while it runs (swtpm): its death ends the boot as the host's."""

    name: str
    proc: Process
    log_tail: Callable[[], str] = lambda: ""


@dataclass
class Outcome:
    """What the monitor loop saw."""

    check: dict[str, Any] | None = None
    reason: str = ""  # check | fatal | exited | timeout | login | no-login | helper | record
    exit_status: int | None = None
    elapsed: float = 0.0
    synthetic: list[SerialEvent] = field(default_factory=list)
    record: Record | None = None  # the check record, whole or not
    helper_died: str = ""
    cpu_wait: float = 0.0  # seconds the VM waited for a host CPU
    overloaded: str = ""  # why the deadline was the host's fault, if it was


class StopFlag(threading.Event):
    """Set by the thread that got a signal; every boot watching it stops its VM and unwinds as
    if it had got that signal itself (KeyboardInterrupt for SIGINT, else Interrupted)."""

    signum: int = signal.SIGINT

    def trip(self, signum: int) -> None:
        self.signum = signum
        self.set()


def _stop(flag: threading.Event) -> None:
    signum = getattr(flag, "signum", signal.SIGINT)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


@dataclass(frozen=True)
class Watch:
    """Watching and judging beyond the default (wait for the image's own check line): stop a
    while after a login prompt, judge from the serial console when no check line came, and a
    flag another thread sets to stop the boot (KeyboardInterrupt in this one)."""

    login_grace: float | None = None
    # judged from the console alone: how long after multi-user.target a login prompt may take
    # (a getty starts with multi-user.target, so one that is not there by then never comes)
    login_wait: float | None = None
    serial_judge: Callable[[Sequence[SerialEvent], Expectations], Verdict] | None = None
    stop: threading.Event | None = None


def _no_login(
    wait: float | None,
    login_at: float | None,
    multi_user: tuple[float, float] | None,
    now: float,
    cpu_wait: float,
) -> bool:
    if wait is None or login_at is not None or multi_user is None:
        return False
    since, cpu_then = multi_user
    return (now - since) - (cpu_wait - cpu_then) > wait


def _report(console: Console, ev: SerialEvent) -> None:
    label = {"milestone": ev.name, "fatal": f"FATAL {ev.name}"}.get(ev.kind, f"HOST {ev.name}")
    console(f"{ev.t:7.1f}s  {label}: {ev.line[:120]}")


class _Channels:
    """Both serial logs: the console (milestones, fatal signs, a fallback check record) and the
    check channel (the record only). Only complete lines are read; a recovery key on the
    console is taken out first (composer/judge/recovery.py)."""

    def __init__(self, console_log: Path, check_log: Path, start: float) -> None:
        self.console = SerialTail(console_log, start)
        self.check = SerialTail(check_log, start, errors="surrogateescape", max_partial=1 << 30)
        self.readers = RecordReader(), RecordReader()
        self.unfinished = ""  # the check channel's last line, while it has no end

    def read(self, scanner: SerialScanner, t: float) -> tuple[list[SerialEvent], Record | None]:
        events: list[SerialEvent] = []
        record: Record | None = None
        lines, partial = self.console.poll()
        keys = scanner.recovery  # a recovery key shown on the console goes no further
        lines, partial = [(lt, keys.take(line)) for lt, line in lines], keys.partial(partial)
        for lt, line in lines:
            inside = self.readers[0].pending or CHECK_PREFIX in line
            record = record or self.readers[0].feed(line)
            events += scanner.feed(CHECK_MARK if inside else line, lt, remember=not inside)
        if partial:
            events += scanner.feed(partial, t, remember=False)
        check_lines, self.unfinished = self.check.poll()
        for lt, line in check_lines:
            found = self.readers[1].feed(line)
            if found is not None:
                record = record or found
                events += scanner.feed(CHECK_MARK, lt, remember=False)
        return events, record

    def finish(self) -> Record | None:
        """At the end of the VM: what the check channel's unended last line makes of a record
        (an older image's complete JSON), else a record that started but never ended:
        truncated."""
        if self.unfinished and (whole := self.readers[1].feed(self.unfinished)) is not None:
            return whole
        return self.readers[1].finish() or self.readers[0].finish()


def _dead_helper(helpers: Sequence[Helper], elapsed: float) -> str:
    for h in helpers:
        status = h.proc.poll()
        if status is not None:
            tail = h.log_tail().strip().replace("\n", " | ")[-300:]
            return f"{h.name} exited with status {status} at {elapsed:.1f} s" + (
                f": {tail}" if tail else ""
            )
    return ""


def _deadline(out: Outcome, timeout: float, elapsed: float) -> str:
    """The deadline: "timeout" once the VM had ``timeout`` seconds to run, or when the wall
    clock reached STRETCH times the timeout first (then ``overloaded`` says why)."""
    if elapsed - out.cpu_wait > timeout:
        return "timeout"
    if elapsed > timeout * STRETCH:
        out.overloaded = (
            f"no check result after {elapsed:.0f} s, {out.cpu_wait:.0f} s of them waiting for a "
            f"host CPU: the VM could run only {elapsed - out.cpu_wait:.0f} of its {timeout:g} s"
        )
        return "timeout"
    return ""


def monitor(
    qemu: Process,
    console_log: Path,
    check_log: Path,
    scanner: SerialScanner,
    timeout: float,
    console: Console,
    login_grace: float | None = None,
    stop: threading.Event | None = None,
    helpers: Sequence[Helper] = (),
    poweroff_grace: float = POWEROFF_GRACE,
    until_summary: bool = False,
    login_wait: float | None = None,
) -> Outcome:
    """Tail both serial logs until the watch ends (module docstring). ``stop`` set: unwind as
    the signal it names would (KeyboardInterrupt for a plain Event). ``until_summary``: the
    grace after the record also ends with the console summary's last line (a throw-away
    boot, which judges nothing after it). ``login_wait``: see Watch; counted, as the deadline,
    without the seconds the VM waited for a host CPU."""
    start = time.monotonic()
    channels = _Channels(console_log, check_log, start)
    cpu = CpuWait(qemu.pid) if qemu.pid else None
    out = Outcome()
    check_at = fatal_at = login_at = summary_at = None
    multi_user: tuple[float, float] | None = None  # (when, the CPU wait then)
    while True:
        if stop is not None and stop.is_set():
            _stop(stop)
        now = time.monotonic()
        exited = qemu.poll() is not None  # read once more after the exit: nothing is lost
        events, record = channels.read(scanner, round(now - start, 2))
        for ev in events:
            _report(console, ev)
        out.elapsed = round(now - start, 2)
        out.cpu_wait = round(cpu.sample(), 2) if cpu else 0.0
        if exited and record is None and out.record is None:
            record = channels.finish()
        if record is not None and out.record is None:
            out.record = record
            if record.payload is not None:
                out.check, check_at = parse_check_payload(record.payload), now
        if fatal_at is None and any(e.kind == "fatal" for e in events):
            fatal_at = now
        if login_at is None and any(e.name == "login" for e in events):
            login_at = now
        if summary_at is None and any(e.name == "summary" for e in events):
            summary_at = now
        if multi_user is None and any(e.name == "multi-user" for e in events):
            multi_user = (now, out.cpu_wait)
        if exited:
            out.reason, out.exit_status = ("check" if out.check else "exited"), qemu.poll()
        elif out.record is not None and out.record.payload is None:
            out.reason = "record"
        elif check_at is not None:
            summarized = until_summary and summary_at is not None
            out.reason = "check" if summarized or now - check_at > poweroff_grace else ""
        elif helper := _dead_helper(helpers, out.elapsed):
            out.reason, out.helper_died = "helper", helper
        elif fatal_at is not None and now - fatal_at > FATAL_GRACE:
            out.reason = "fatal"
        elif login_grace is not None and login_at is not None and now - login_at > login_grace:
            out.reason = "login"
        elif _no_login(login_wait, login_at, multi_user, now, out.cpu_wait):
            out.reason = "no-login"
        else:
            out.reason = _deadline(out, timeout, out.elapsed)
        if out.reason:
            return out
        time.sleep(POLL_INTERVAL)
