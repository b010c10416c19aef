"""Every tool dies with the composer, with its own children, whatever kills the composer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from composer.core import tools
from composer.core.errors import ToolError
from composer.core.log import log_file

# A tool that starts a grandchild in the background and one that leaves its process group:
# what mmdebstrap -> apt -> dpkg -> maintainer scripts look like to the kernel.
FAMILY = "sleep 600 & setsid sleep 600 & echo $$ >> {pids}; wait"

COMPOSER = """
import sys, time
from pathlib import Path
import typer
from composer.core import tools
from composer.cli.common import guard
from composer.core.lifetime import install_signal_handlers

install_signal_handlers()
try:
    with guard("interrupted"):
        print("ready", flush=True)
        tools.run(["sh", "-c", sys.argv[1]])
except typer.Exit as done:
    sys.exit(done.exit_code)
"""


def _family_of(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc), itself excluded."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _all_gone(pids: set[int], deadline: float = 15.0) -> set[int]:
    end = time.monotonic() + deadline
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], set[int]]:
    pids = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, "-c", COMPOSER, FAMILY.format(pids=pids)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    end = time.monotonic() + 30
    while len(family := _family_of(proc.pid)) < 4 and time.monotonic() < end:
        time.sleep(0.05)  # unshare, sh, two sleeps (and the namespace's first process)
    assert len(family) >= 4, family
    return proc, family


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_tool_and_its_children_die_with_the_composer(tmp_path: Path, sig: int) -> None:
    proc, family = _start(tmp_path)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert proc.returncode in (-signal.SIGKILL, 128 + sig) or (
        sig == signal.SIGINT and proc.returncode == 130
    )
    assert _all_gone(family) == set(), "processes outlived the composer"


def test_on_return_nothing_of_the_tool_is_left(tmp_path: Path) -> None:
    """A tool that exits while a child it left behind still runs: the namespace goes with it."""
    marker = tmp_path / "child"
    tools.run(["sh", "-c", f"(sleep 600; touch {marker}) & echo started"])
    left = [p for p in _family_of(os.getpid()) if _alive(p)]
    assert left == [], left


def test_failure_names_the_tool_and_keeps_stderr() -> None:
    with pytest.raises(ToolError, match=r"sh failed \(exit 3\)[\s\S]*oops"):
        tools.run(["sh", "-c", "echo oops >&2; exit 3"])


def test_stdin_is_not_the_terminal() -> None:
    assert tools.output(["sh", "-c", "cat; echo done"]) == "done\n"
    assert tools.output(["cat"], input=b"given") == "given"


def test_output_into_an_open_file(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with open(dest, "wb") as fh:
        tools.run(["printf", "%s", "bytes"], stdout=fh)
    assert dest.read_bytes() == b"bytes"


def test_a_logged_tools_output_and_errors_go_to_the_log_as_they_come(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("# stage x\n")
    with log_file(log):
        tools.run(["sh", "-c", "echo out; echo err >&2"])
        with pytest.raises(ToolError, match=r"(?s)exit 4.*late"):
            tools.run(["sh", "-c", "echo early; echo late >&2; exit 4"])
    text = log.read_text()
    assert text.startswith("# stage x\n$ sh -c echo out; echo err >&2\nout\nerr\n")
    assert text.endswith("early\nlate\n")


def test_a_line_hook_sees_each_line_and_keeps_what_it_consumes_out_of_the_log(
    tmp_path: Path,
) -> None:
    log, seen = tmp_path / "build.log", []

    def hook(line: str) -> bool:
        seen.append(line)
        return line.startswith("status:")

    with log_file(log):
        tools.run(["sh", "-c", "echo one; echo status:50 >&2; echo two"], on_line=hook)
    assert seen == ["one", "status:50", "two"]
    assert log.read_text().splitlines()[1:] == ["one", "two"]


def test_children_of_a_killed_tool_are_killed_too(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"exit 137"):
        tools.run(["sh", "-c", "sleep 600 & setsid sleep 600 & kill -9 $$"])
    left = [p for p in _family_of(os.getpid()) if _alive(p)]
    assert left == [], left


def test_a_tool_runs_in_the_composers_pid_namespace() -> None:
    """No PID namespace: systemd-detect-virt (>= 256) takes one for a container, and dracut
    then leaves the device nodes out of the initrd."""
    assert tools.output(["readlink", "/proc/self/ns/pid"]).strip() == os.readlink(
        "/proc/self/ns/pid"
    )


# The signal arrives while the tool is being started (between fork and exec): the composer's
# preexec hook is wrapped to send it then, and to wait before the exec, so that it lands while
# subprocess.Popen waits for the exec. The composer then takes its time to clean up, as a
# build does (removing its trees): a tool that was left running would write after that.
STARTING = """
import os, signal, sys, time
from composer.core import lifetime, tools

real = tools.die_with_parent

def signalled_while_starting(sig):
    preexec = real(sig)
    def hook():
        preexec()
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(0.5)
    return hook

tools.die_with_parent = signalled_while_starting
lifetime.install_signal_handlers()
marker = open(sys.argv[1], "a", buffering=1)
try:
    tools.run(["sh", "-c", f"sleep 1; echo late >> {sys.argv[1]}"])
    marker.write("finished\\n")
except lifetime.Interrupted:
    marker.write("interrupted\\n")
    time.sleep(3)
"""


def test_a_signal_while_a_tool_starts_stops_the_tool(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.run(
        [sys.executable, "-c", STARTING, str(marker)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text().splitlines() == ["interrupted"]


def test_a_log_file_that_cannot_be_written_is_said_once_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A full disk under the build log (/dev/full: every write fails with ENOSPC): one line
    on stderr names the file and why, where logging would print a traceback per line."""
    with log_file(Path("/dev/full")):
        tools.run([sys.executable, "-c", "print('one'); print('two')"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "log file /dev/full: some lines from here on are missing" in err
    assert "No space left on device" in err and "Traceback" not in err


def test_a_lowered_thread_starts_its_tools_lowered_and_leaves_the_others_alone() -> None:
    """lower_priority: the calling thread and every tool it starts (below its reaper) run at
    nice 10 or more; another thread, and the tools it starts, keep their priority; calling it
    again never raises the priority back."""
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int | str] = {}

    def lowered() -> None:
        tools.lower_priority()
        tools.lower_priority(5)  # never back up
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["tool"] = tools.output(["nice"]).strip()

    worker = threading.Thread(target=lowered)
    worker.start()
    worker.join()
    assert seen == {"thread": max(10, before), "tool": str(max(10, before))}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    assert tools.output(["nice"]).strip() == str(before)
