"""CPU waits from schedstat, and the deadline that counts only the time a VM could run."""

from __future__ import annotations

import os
from pathlib import Path

from composer.judge.hostload import CpuWait, parse_schedstat, thread_waits
from composer.judge.monitor import STRETCH, Outcome, _deadline


def fake_proc(root: Path, pid: int, threads: dict[int, tuple[int, int]]) -> None:
    for tid, (run, wait) in threads.items():
        task = root / str(pid) / "task" / str(tid)
        task.mkdir(parents=True, exist_ok=True)
        (task / "schedstat").write_text(f"{run} {wait} 17\n")


def test_parse_schedstat() -> None:
    assert parse_schedstat("2609607868 43495239247 111921\n") == (2609607868, 43495239247)
    assert parse_schedstat("") is None and parse_schedstat("x y z") is None


def test_waits_are_the_most_one_thread_waited_since_first_seen(tmp_path: Path) -> None:
    fake_proc(tmp_path, 7, {7: (1_000, 5_000_000_000), 8: (9_000, 1_000_000_000)})
    cpu = CpuWait(7, proc=tmp_path)
    assert cpu.sample() == 0.0  # the first sample is the base
    fake_proc(tmp_path, 7, {7: (2_000, 6_500_000_000), 8: (99_000, 4_000_000_000)})
    assert cpu.sample() == 3.0  # thread 8 waited 3 s, thread 7 1.5 s: not 4.5
    fake_proc(tmp_path, 7, {9: (1, 2_000_000_000)})  # a new thread starts from its own base
    assert cpu.sample() == 3.0


def test_a_process_that_is_gone_keeps_the_last_figure(tmp_path: Path) -> None:
    cpu = CpuWait(123456789, proc=tmp_path)
    assert cpu.sample() == 0.0 and thread_waits(123456789, tmp_path) == {}


def test_this_process_can_be_read() -> None:
    assert os.getpid() in thread_waits(os.getpid())  # the main thread's id is the pid


def test_deadline_is_stretched_by_cpu_waits_up_to_a_limit() -> None:
    out = Outcome(cpu_wait=0.0)
    assert _deadline(out, 100.0, 99.0) == "" and _deadline(out, 100.0, 101.0) == "timeout"
    assert out.overloaded == ""  # the VM had its 100 s: the image's timeout
    out = Outcome(cpu_wait=150.0)
    assert _deadline(out, 100.0, 200.0) == ""  # only 50 s of the 100 s could be used
    assert _deadline(out, 100.0, 260.0) == "timeout" and out.overloaded == ""
    out = Outcome(cpu_wait=290.0)
    assert _deadline(out, 100.0, 100.0 * STRETCH + 1) == "timeout"
    assert "waiting for a host CPU" in out.overloaded
