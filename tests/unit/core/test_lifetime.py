"""SIGTERM and SIGHUP unwind like Ctrl-C; children die with their parent, even on SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from composer.core import locks
from composer.core.lifetime import Stopped, StopScope, signals_held, stoppable

GUARDED = """
import sys, time
from pathlib import Path
import typer
from composer.cli.common import guard
from composer.core.lifetime import install_signal_handlers

install_signal_handlers()
try:
    with guard("interrupted: nothing was written"):
        try:
            print("ready", flush=True)
            time.sleep(60)
        finally:
            Path(sys.argv[1]).write_text("cleaned up")
except typer.Exit as done:
    sys.exit(done.exit_code)
"""

PARENT = """
import subprocess, time
from composer.core.lifetime import die_with_parent
child = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int, deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        if state == "Z":  # dead, waiting for a reaper that is gone too
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_runs_cleanup_and_exits_with_its_code(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", GUARDED, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert marker.read_text() == "cleaned up"
    assert f"interrupted: nothing was written ({sig.name})" in stderr
    assert "Traceback" not in stderr


def test_child_dies_when_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    assert _gone(child), f"child {child} outlived its SIGKILLed parent"


def test_ctrl_c_inside_a_held_block_is_raised_when_it_ends() -> None:
    """(pytest runs tests in the main thread, where signal handlers run.)"""
    done = []
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the rest of the block")
    assert done == ["the rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stop_scope_stops_its_children_and_refuses_new_ones() -> None:
    scope = StopScope()
    stopped: list[str] = []
    with scope.child(lambda: stopped.append("first")):
        scope.stop()
        assert stopped == ["first"] and scope.stopped
    with pytest.raises(Stopped), scope.child(lambda: stopped.append("late")):
        pass  # never: a child that starts after the stop is stopped at once
    assert stopped == ["first", "late"]
    with pytest.raises(Stopped):
        scope.check()


def test_a_stoppable_wait_for_a_lock_ends_when_its_scope_is_stopped(tmp_path: Path) -> None:
    """No signal reaches a thread's flock(2): a stoppable thread waits in tries instead."""
    lock = tmp_path / "lock"
    scope = StopScope()
    outcome: list[str] = []

    def waiter() -> None:
        with stoppable(scope):
            try:
                locks.acquire(lock)
            except Stopped:
                outcome.append("stopped")

    with locks.held(lock):
        thread = threading.Thread(target=waiter)
        thread.start()
        scope.stop()
        thread.join(60)
    assert outcome == ["stopped"]
