"""How long a VM waited for a host CPU: the run-queue delay of its busiest thread.

Under TCG the guest's clock is the host's: every second QEMU's vCPU thread spends runnable but
not running (another process had the CPU) still passes inside the guest. On an overloaded host
a boot therefore looks slow to the guest and to the deadline, although the image did nothing
wrong. /proc/PID/task/TID/schedstat (Documentation/scheduler/sched-stats.rst) gives each
thread's time on a CPU and time waiting on a run queue, in nanoseconds; the boot's deadline is
charged only for the time the VM could run, and a verdict can say how much it had to wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


def parse_schedstat(text: str) -> tuple[int, int] | None:
    """(ns on a CPU, ns waiting on a run queue) from one schedstat line."""
    fields = text.split()
    if len(fields) < 2 or not all(f.isdigit() for f in fields[:2]):
        return None
    return int(fields[0]), int(fields[1])


def thread_waits(pid: int, proc: Path = PROC) -> dict[int, int]:
    """Thread id -> ns it waited on a run queue, for every thread of ``pid``; empty when the
    process is gone or its threads cannot be read."""
    out: dict[int, int] = {}
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            parsed = parse_schedstat((task / "schedstat").read_text())
        except OSError:
            continue
        if parsed is not None and task.name.isdigit():
            out[int(task.name)] = parsed[1]
    return out


@dataclass
class CpuWait:
    """Seconds a process's threads waited for a CPU since they were first sampled: the most
    any one thread waited (the vCPU thread under TCG), never the sum (threads wait at the same
    time), so it can be compared with the wall-clock time of the boot."""

    pid: int
    proc: Path = PROC
    waited: float = 0.0
    _base: dict[int, int] = field(default_factory=dict)

    def sample(self) -> float:
        for tid, wait in thread_waits(self.pid, self.proc).items():
            first = self._base.setdefault(tid, wait)
            self.waited = max(self.waited, (wait - first) / 1e9)
        return self.waited
