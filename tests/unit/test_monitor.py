"""The boot monitor's exits for foreign images and parallel runs, with a small shell script in
QEMU's place writing to the console log (a real child process, stopped like QEMU)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from composer.vm.boot import monitor
from composer.vm.qemu import QemuProcess
from composer.vm.serial import SerialScanner


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
    start = time.monotonic()
    with proc as qemu:
        out = monitor(qemu, console, check, scanner, 30.0, lambda _: None, login_grace=0.5)
    assert out.reason == "login" and out.check is None
    assert time.monotonic() - start < 10
    assert {e.name for e in scanner.events} >= {"kernel", "root-mounted", "login"}


def test_without_grace_a_login_prompt_does_not_end_it(tmp_path: Path) -> None:
    payload = '{"version":1}'
    proc, console, check = guest(
        tmp_path,
        "printf 'host login: ' >> @CONSOLE@; sleep 1;"
        f" printf 'DPS-COMPOSER-CHECK {payload}\\n' >> @CHECKLOG@; exit 0",
    )
    with proc as qemu:
        out = monitor(qemu, console, check, SerialScanner(), 30.0, lambda _: None)
    assert out.reason == "check" and out.check == {"version": 1}


def test_stop_flag_interrupts_the_watch(tmp_path: Path) -> None:
    proc, console, check = guest(tmp_path, "sleep 60")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with proc as qemu, pytest.raises(KeyboardInterrupt):
        monitor(qemu, console, check, SerialScanner(), 30.0, lambda _: None, stop=stop)
    assert proc.poll() is not None  # leaving the context stopped the "VM"
