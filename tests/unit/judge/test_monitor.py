"""The boot monitor's exits (check record, login prompt, helper death, signals, deadline), with a
small shell script in QEMU's place writing to the serial logs (a real child process, stopped
like QEMU)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from composer.core.lifetime import Interrupted
from composer.judge.monitor import Helper, StopFlag, monitor
from composer.judge.qemu import QemuProcess
from composer.judge.record import frame
from composer.judge.serial import SerialScanner


def guest(tmp_path: Path, script: str) -> tuple[QemuProcess, Path, Path]:
    console, check = tmp_path / "serial.log", tmp_path / "check.log"
    console.write_bytes(b"")
    check.write_bytes(b"")
    argv = ["sh", "-c", script.replace("@CONSOLE@", str(console)).replace("@CHECKLOG@", str(check))]
    return QemuProcess(argv, tmp_path / "qemu.log", term_grace=1.0), console, check


def test_login_prompt_ends_the_watch_after_the_grace(tmp_path: Path) -> None:
    proc, console, check = guest(
        tmp_path,
        "printf '[ 1.0] Linux version 6.12\\nMounted sysroot.mount\\n\\nhost login: ' >> @CONSOLE@;"
        " sleep 60",
    )
    scanner = SerialScanner()
    with proc as qemu:
        out = monitor(qemu, console, check, scanner, 30.0, lambda _: None, login_grace=0.5)
        still_running = qemu.poll() is None
    # the watch ended it, not the deadline (reason "timeout") nor the guest (it sleeps on)
    assert out.reason == "login" and out.check is None and out.exit_status is None
    assert still_running
    assert {e.name for e in scanner.events} >= {"kernel", "root-mounted", "login"}


@pytest.mark.parametrize("prompt", [False, True])
def test_no_login_prompt_long_after_multi_user_ends_the_watch(tmp_path: Path, prompt: bool) -> None:
    """Judged from the console alone: a getty starts with multi-user.target, so no prompt a
    while after it ends the watch ("no-login") instead of the deadline; a prompt in time ends
    it as a login (after its grace)."""
    proc, console, check = guest(
        tmp_path,
        "printf '[ 1.0] Linux version 6.12\\nReached target multi-user.target\\n' >> @CONSOLE@;"
        + (" sleep 0.3; printf '\\nhost login: ' >> @CONSOLE@;" if prompt else "")
        + " sleep 60",
    )
    scanner = SerialScanner()
    with proc as qemu:  # a login grace of 0.5 s, a login wait of 1.5 s
        out = monitor(qemu, console, check, scanner, 30.0, lambda _: None, 0.5, login_wait=1.5)
        assert qemu.poll() is None  # the watch ended it, not the guest
    assert out.reason == ("login" if prompt else "no-login")


@pytest.mark.parametrize(
    ("early", "kwargs"),
    [
        ("host login: ", {}),  # without a login grace
        # the summary's end line counts only once the record is whole
        ("dps-composer-check: summary ends\\n", {"poweroff_grace": 20.0, "until_summary": True}),
    ],
)
def test_a_console_line_before_the_record_does_not_end_it(
    tmp_path: Path, early: str, kwargs: dict[str, Any]
) -> None:
    """The guest prints the line first and its record 1 s later: it is watched until the
    record has come, and judged by it."""
    line = frame('{"version":1}')
    proc, console, check = guest(
        tmp_path,
        f"printf '{early}' >> @CONSOLE@; sleep 1; printf '%s\\n' '{line}' >> @CHECKLOG@; exit 0",
    )
    with proc as qemu:
        out = monitor(qemu, console, check, SerialScanner(), 30.0, lambda _: None, **kwargs)
    assert out.reason == "check" and out.check == {"version": 1}


def test_a_record_written_slowly_is_read_whole(tmp_path: Path) -> None:
    """The guest writes the ~8 KB record over a while: the reader waits for its end."""
    payload = '{"version":1,"blame":["' + "x" * 8000 + '"]}'
    (tmp_path / "record").write_text(frame(payload) + "\n")
    proc, console, check = guest(
        tmp_path,
        f"for i in $(seq 0 20); do dd if={tmp_path}/record bs=400 skip=$i count=1 "
        "status=none >> @CHECKLOG@; sleep 0.05; done; sleep 0.3; exit 0",
    )
    with proc as qemu:
        out = monitor(qemu, console, check, SerialScanner(), 30.0, lambda _: None)
    assert out.reason == "check" and out.check is not None and "parse_error" not in out.check
    assert out.check["blame"] == ["x" * 8000]


CUT = frame('{"version":1,"pad":"' + "y" * 3000 + '"}')[:1500]
DAMAGED = frame('{"version":1}').replace('"version"', '"versjon"')


@pytest.mark.parametrize(
    ("script", "reason", "problem"),
    [
        # the VM ends in the middle of the record
        (f"printf '%s' '{CUT}' >> @CHECKLOG@; exit 0", "exited", "truncated"),
        # the record arrived whole but not intact: the watch ends at once
        (f"printf '%s\\n' '{DAMAGED}' >> @CHECKLOG@; sleep 60", "record", "damaged"),
    ],
)
def test_a_record_that_is_not_whole_is_no_result(
    tmp_path: Path, script: str, reason: str, problem: str
) -> None:
    proc, console, check = guest(tmp_path, script)
    with proc as qemu:
        out = monitor(qemu, console, check, SerialScanner(), 30.0, lambda _: None)
    assert out.reason == reason and out.check is None
    assert out.record is not None and problem in out.record.problem


def test_a_helper_that_dies_ends_the_boot(tmp_path: Path) -> None:
    proc, console, check = guest(tmp_path, "sleep 60")
    helper = subprocess.Popen(["sh", "-c", "sleep 0.5; exit 3"])
    with proc as qemu:
        out = monitor(
            qemu,
            console,
            check,
            SerialScanner(),
            30.0,
            lambda _: None,
            helpers=[Helper("swtpm", helper, lambda: "swtpm: gone")],
        )
    assert out.reason == "helper"
    assert out.helper_died.startswith("swtpm exited with status 3 at ")
    assert out.helper_died.endswith(": swtpm: gone")


def test_stop_flag_unwinds_as_the_signal_it_names(tmp_path: Path) -> None:
    proc, console, check = guest(tmp_path, "sleep 60")
    stop = StopFlag()
    threading.Timer(0.5, stop.trip, args=(signal.SIGTERM,)).start()
    with proc as qemu, pytest.raises(Interrupted) as caught:
        monitor(qemu, console, check, SerialScanner(), 30.0, lambda _: None, stop=stop)
    assert caught.value.exit_code == 143
    assert proc.poll() is not None


def test_stop_flag_interrupts_the_watch(tmp_path: Path) -> None:
    proc, console, check = guest(tmp_path, "sleep 60")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with proc as qemu, pytest.raises(KeyboardInterrupt):
        monitor(qemu, console, check, SerialScanner(), 30.0, lambda _: None, stop=stop)
    assert proc.poll() is not None  # leaving the context stopped the "VM"


@pytest.mark.parametrize(
    ("grace", "stopping", "reason", "ended_by_itself"),
    [(0.5, 60, "check", False), (30.0, 1, "check", True)],
)
def test_after_the_check_record_the_guest_has_the_grace_to_power_off(
    tmp_path: Path, grace: float, stopping: int, reason: str, ended_by_itself: bool
) -> None:
    """A throw-away boot's short grace ends the watch while the guest still runs; the full
    grace waits for the guest to end by itself. The guest takes ``stopping`` seconds to power
    off: far beyond the short grace, well within the full one (a loaded host cannot blur it)."""
    line = frame('{"version":1}')
    proc, console, check = guest(
        tmp_path, f"printf '%s\\n' '{line}' >> @CHECKLOG@; sleep {stopping}; exit 0"
    )
    with proc as qemu:
        out = monitor(
            qemu, console, check, SerialScanner(), 30.0, lambda _: None, poweroff_grace=grace
        )
        running = qemu.poll() is None
        group = qemu.pid
    assert out.reason == reason and out.check == {"version": 1}
    assert running is not ended_by_itself
    assert (out.exit_status is not None) is ended_by_itself
    # a guest the watch left running is stopped with its whole process group on leaving
    assert group is not None and proc.poll() is not None
    assert gone_in_time(group) == []


@pytest.mark.parametrize(("summary_ends", "grace"), [(True, 30.0), (False, 0.5)])
def test_a_throwaway_watch_ends_with_the_console_summary(
    tmp_path: Path, summary_ends: bool, grace: float
) -> None:
    """until_summary: the console summary's last line ends the watch before the grace (30 s)
    while the guest still runs (it would power off by itself after 5 s, far beyond the poll);
    an older image's check prints no such line, and the (short) grace ends it."""
    line = frame('{"version":1}')
    end = "\\ndps-composer-check: summary ends" if summary_ends else ""
    proc, console, check = guest(
        tmp_path,
        f"printf '%s\\n' '{line}' >> @CHECKLOG@;"
        f" printf 'dps-composer-check: state=running{end}\\n' >> @CONSOLE@; sleep 5; exit 0",
    )
    scanner = SerialScanner()
    with proc as qemu:
        out = monitor(
            qemu,
            console,
            check,
            scanner,
            10.0,
            lambda _: None,
            poweroff_grace=grace,
            until_summary=True,
        )
        running = qemu.poll() is None
    assert out.reason == "check" and out.check == {"version": 1}
    assert running and out.exit_status is None  # the watch ended it, not the guest
    names = [e.name for e in scanner.events if e.kind == "milestone"]
    assert names == (["check", "summary"] if summary_ends else ["check"])


def gone_in_time(group: int, seconds: float = 10.0) -> list[int]:
    """The group's live processes once they are gone or ``seconds`` have passed: a signalled
    process of the group (the fake guest's sleep) dies asynchronously, on a loaded host
    some milliseconds after the kill."""
    deadline = time.monotonic() + seconds
    while (live := live_in_group(group)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return live


def live_in_group(group: int) -> list[int]:
    """Processes of the group that still run (not zombies: an orphan's is reaped by PID 1,
    which in a container may never do it)."""
    live = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            live.append(int(stat_file.parent.name))
    return live
