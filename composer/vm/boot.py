"""Boot an image in QEMU/OVMF (+ swtpm) and judge it: the `dps-composer boot` command's engine."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from composer.arch import get_arch
from composer.errors import ComposerError
from composer.files import copy_into_dir
from composer.tools import which
from composer.vm.firmware import Firmware, select_firmware
from composer.vm.kvm import Accel, resolve_accel
from composer.vm.qemu import QemuConfig, QemuProcess, build_command
from composer.vm.serial import (
    CHECK_PREFIX,
    SerialEvent,
    SerialScanner,
    SerialTail,
    find_check_payload,
)
from composer.vm.tpm import swtpm
from composer.vm.validate import (
    Expectations,
    Verdict,
    judge,
    load_expectations,
    parse_check_payload,
)

Console = Callable[[str], None]
POLL_INTERVAL = 0.25
POWEROFF_GRACE = 20.0  # after the check line: time for the guest to power off by itself
FATAL_GRACE = 3.0  # after a fatal sign: keep reading, the next lines usually explain it
CHECK_MARK = CHECK_PREFIX + "(result received)"  # scanned instead of the JSON itself


def _quiet(_: str) -> None:
    pass


@dataclass
class Outcome:
    """What the monitor loop saw."""

    check: dict[str, Any] | None = None
    reason: str = ""  # check | fatal | exited | timeout
    exit_status: int | None = None
    elapsed: float = 0.0
    synthetic: list[SerialEvent] = field(default_factory=list)


def _report(console: Console, ev: SerialEvent) -> None:
    label = ev.name if ev.kind == "milestone" else f"FATAL {ev.name}"
    console(f"{ev.t:7.1f}s  {label}: {ev.line[:120]}")


def _read_serial(
    console_tail: SerialTail, check_tail: SerialTail, scanner: SerialScanner, t: float
) -> tuple[list[SerialEvent], str | None]:
    """New events from both channels and the first check payload seen (if any)."""
    events: list[SerialEvent] = []
    payload: str | None = None
    lines, partial = console_tail.poll()
    for lt, line in lines:
        found = find_check_payload(line)  # fallback channel: the guest had no ttyS1
        payload = payload or found
        events += scanner.feed(CHECK_MARK if found else line, lt, remember=found is None)
    if partial:
        events += scanner.feed(partial, t, remember=False)
    for lt, line in check_tail.poll()[0]:
        found = find_check_payload(line)
        if found is not None:
            payload = payload or found
            events += scanner.feed(CHECK_MARK, lt, remember=False)
    return events, payload


def monitor(
    qemu: QemuProcess,
    console_log: Path,
    check_log: Path,
    scanner: SerialScanner,
    timeout: float,
    console: Console,
    login_grace: float | None = None,
    stop: threading.Event | None = None,
) -> Outcome:
    """Tail both serial logs until the check line, a fatal sign, QEMU's exit or the deadline;
    with ``login_grace``, also until that many seconds after a login prompt without a check
    line (images that cannot run the check). ``stop`` set: raise KeyboardInterrupt."""
    start = time.monotonic()
    tails = SerialTail(console_log, start), SerialTail(check_log, start)
    out = Outcome()
    check_at = fatal_at = login_at = None
    while True:
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        now = time.monotonic()
        exited = qemu.poll() is not None  # read once more after the exit: nothing is lost
        events, payload = _read_serial(*tails, scanner, round(now - start, 2))
        for ev in events:
            _report(console, ev)
        if payload is not None and out.check is None:
            out.check, check_at = parse_check_payload(payload), now
        if fatal_at is None and any(e.kind == "fatal" for e in events):
            fatal_at = now
        if login_at is None and any(e.name == "login" for e in events):
            login_at = now
        out.elapsed = round(now - start, 2)
        if exited:
            out.reason, out.exit_status = ("check" if out.check else "exited"), qemu.poll()
        elif check_at is not None:
            out.reason = "check" if now - check_at > POWEROFF_GRACE else ""
        elif fatal_at is not None and now - fatal_at > FATAL_GRACE:
            out.reason = "fatal"
        elif login_grace is not None and login_at is not None and now - login_at > login_grace:
            out.reason = "login"
        elif now - start > timeout:
            out.reason = "timeout"
        if out.reason:
            return out
        time.sleep(POLL_INTERVAL)


def _explain(out: Outcome, scanner: SerialScanner, qemu_log: Path, timeout: float) -> None:
    """Turn a missing result into evidence judge() can name (as synthetic fatal events)."""
    if out.check is not None or out.reason in ("fatal", "login"):
        return
    if out.reason == "timeout":
        line = f"no check result within {timeout:g} s"
    elif any(e.name == "power-off" for e in scanner.events):
        line = "guest powered off without a check result (is dps-composer-check.service enabled?)"
    else:
        err = qemu_log.read_text(errors="replace").strip().splitlines()[-3:]
        line = f"QEMU exited with status {out.exit_status}: {' | '.join(err) or 'no output'}"
    out.synthetic.append(SerialEvent("fatal", out.reason, out.elapsed, line, "booted"))


def _firmware_for(
    exp: Expectations,
    secure_boot: bool | None,
    console: Console,
    enrolled_keys: bool | None = None,
) -> Firmware:
    try:
        arch = get_arch(exp.architecture)
    except KeyError:
        raise ComposerError(
            f"cannot boot {exp.architecture} images (no QEMU setup for it)"
        ) from None
    sb = exp.secure_boot if secure_boot is None else secure_boot
    fw = select_firmware(arch, arch.machine, bool(sb), enrolled_keys)
    console(f"firmware: {fw.descriptor.name} ({fw.code.name}, {fw.description})")
    return fw


def _keep(work: Path, keep_dir: Path, verdict: Verdict) -> None:
    """The work files beside the image: never through a link planted there (files.py)."""
    verdict.serial_log = keep_dir / "serial.log"
    extra = {"verdict.json": verdict.to_json() + "\n"}
    copy_into_dir(work, keep_dir, skip=(".sock", "overlay.qcow2"), extra=extra)


@dataclass(frozen=True)
class Watch:
    """Watching and judging beyond the default (wait for the image's own check line): stop a
    while after a login prompt, judge from the serial console when no check line came, and a
    flag another thread sets to stop the boot (KeyboardInterrupt in this one)."""

    login_grace: float | None = None
    serial_judge: Callable[[Sequence[SerialEvent], Expectations], Verdict] | None = None
    stop: threading.Event | None = None


def _run_vm(
    work: Path,
    cfg: QemuConfig,
    tpm: bool,
    timeout: float,
    console: Console,
    watch: Watch = Watch(),
) -> tuple[Outcome, SerialScanner]:
    scanner = SerialScanner()
    qemu_bin = which(f"qemu-system-{cfg.firmware.arch}")
    with ExitStack() as stack:  # leaves in reverse: QEMU is stopped before swtpm
        if tpm:
            handle = stack.enter_context(swtpm(work, cfg.firmware.arch))
            cfg = replace(cfg, tpm_args=handle.qemu_args)
            console(f"swtpm: pid {handle.pid}, socket {handle.socket}")
        argv = build_command(qemu_bin, cfg)
        (work / "qemu.cmdline").write_text(" ".join(argv) + "\n")
        qemu = stack.enter_context(QemuProcess(argv, work / "qemu.log"))
        console(f"qemu: pid {qemu.pid}, serial log {cfg.console_log}")
        out = monitor(
            qemu,
            cfg.console_log,
            cfg.check_log,
            scanner,
            timeout,
            console,
            watch.login_grace,
            watch.stop,
        )
    _explain(out, scanner, work / "qemu.log", timeout)
    return out, scanner


def boot_image(
    image: Path,
    *,
    expectations: Expectations | None = None,
    accel: str = "auto",
    timeout: float = 600.0,
    secure_boot: bool | None = None,
    vars_file: Path | None = None,
    tpm: bool = True,
    keep_dir: Path | None = None,
    console: Console | None = None,
    writable: bool = False,
    memory: str = "2048M",
    smp: int | None = None,
    extra_qemu_args: Sequence[str] = (),
    watch: Watch = Watch(),
) -> Verdict:
    """Boot ``image`` under OVMF (+ swtpm), watch the serial ports and judge the result.

    Never modifies the image unless ``writable``. Everything it starts is stopped and its temp
    dir removed on every path (also on KeyboardInterrupt); with ``keep_dir`` the work files
    (serial.log, check.log, qemu.log, qemu.cmdline, swtpm.log, vars.fd, verdict.json) are kept.
    """
    say = console or _quiet
    image = image.resolve()
    if not image.is_file():
        raise ComposerError(f"{image}: no such image file")
    exp = expectations or load_expectations(image)
    # An image's own varstore replaces the template: pick the descriptor that ships an empty
    # one (the varstore was made from it), not one with somebody else's keys enrolled.
    fw = _firmware_for(exp, secure_boot, say, enrolled_keys=False if vars_file else None)
    chosen: Accel = resolve_accel(accel, fw)
    say(f"accelerator: {chosen.name} ({chosen.reason})")
    if smp is None:
        # One vCPU under TCG: with two, multi-threaded TCG lets one vCPU run code the other
        # is patching (x86 static keys), and the guest dies with "Oops: int3" during boot.
        smp = 1 if chosen.name == "tcg" else 2
    work = Path(tempfile.mkdtemp(prefix="dps-composer-boot-"))
    try:
        vars_copy = work / "vars.fd"
        shutil.copyfile(vars_file or fw.vars_template, vars_copy)
        say(f"varstore: private copy of {vars_file or fw.vars_template}")
        cfg = QemuConfig(
            firmware=fw,
            vars_copy=vars_copy,
            accel_args=chosen.args,
            console_log=work / "serial.log",
            check_log=work / "check.log",
            image=image,
            snapshot=not writable,
            memory=memory,
            smp=smp,
            extra=tuple(extra_qemu_args),
        )
        out, scanner = _run_vm(work, cfg, tpm, timeout, say, watch)
        events = [*scanner.events, *out.synthetic]
        if out.check is None and watch.serial_judge is not None:
            verdict = watch.serial_judge(events, exp)
        else:
            verdict = judge(out.check, events, exp)
        verdict.timings["total"] = out.elapsed
        verdict.accel, verdict.firmware = chosen.name, str(fw.descriptor)
        verdict.serial_tail = list(scanner.tail)
        verdict.notes += [
            f"accelerator: {chosen.reason}",
            f"varstore: {vars_file or fw.vars_template}",
        ]
        say(f"verdict: {'PASS' if verdict.passed else 'FAIL'} after {out.elapsed:.1f} s")
        if keep_dir is not None:
            _keep(work, keep_dir, verdict)
        return verdict
    finally:
        shutil.rmtree(work, ignore_errors=True)
