"""Choose the accelerator: KVM only when a real probe boots OVMF under it, else TCG.

``/dev/kvm`` answering KVM_GET_API_VERSION is not enough: on some hosts guests hang or OVMF
dies with "KVM internal error". The probe boots the firmware (no disk) under ``-accel kvm``
and waits for BdsDxe. Results are cached per (kernel release, QEMU version) for 24 h.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from composer.core import paths
from composer.core.errors import ComposerError
from composer.core.files import atomic_write
from composer.core.tools import output, which
from composer.core.workdir import scratch_dir, work_parent
from composer.image.firmware import Firmware
from composer.judge.qemu import QemuProcess, firmware_args
from composer.toolchain.boottools import HOST, BootTools

KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
CACHE_TTL = 24 * 3600.0
ACCELS = ("auto", "kvm", "tcg")
READY_MARKERS = ("BdsDxe", "Shell>", "UEFI Interactive Shell")
FAIL_MARKERS = ("KVM internal error", "emulation failure", "Assertion")


@dataclass(frozen=True)
class KvmProbe:
    usable: bool
    reason: str
    seconds: float  # how long the probe took
    kernel: str = ""
    qemu_version: str = ""
    checked_at: float = 0.0  # epoch seconds
    cached: bool = False


@dataclass(frozen=True)
class Accel:
    name: str  # kvm | tcg
    args: tuple[str, ...]
    reason: str


KVM_ARGS = ("-accel", "kvm", "-cpu", "host")
TCG_ARGS = ("-accel", "tcg", "-cpu", "max")
# An x86 guest under TCG: "max" without the virtualization extensions. No boot test runs VMs of
# its own, and with svm in its CPU the guest's udev loads kvm and kvm_amd (modules of 1.5 MB,
# decompressed under emulation) while the check gathers its facts on the same emulated CPU.
TCG_CPU = {"x86_64": "max,svm=off,vmx=off", "i386": "max,svm=off,vmx=off"}


def tcg_args(arch: str) -> tuple[str, ...]:
    """QEMU's accelerator and CPU options for TCG and a guest of ``arch``."""
    return ("-accel", "tcg", "-cpu", TCG_CPU.get(arch, "max"))


def choose_accel(requested: str, probe: KvmProbe | None, arch: str = "") -> Accel:
    """Pure decision from the request and the probe result (None = no probe was made), with
    the CPU for a guest of ``arch`` under TCG."""
    if requested not in ACCELS:
        raise ComposerError(f"unknown accelerator {requested!r}: use one of {', '.join(ACCELS)}")
    tcg = tcg_args(arch)
    if requested == "tcg":
        return Accel("tcg", tcg, "TCG requested")
    if requested == "kvm":
        warn = f" (warning: probe said: {probe.reason})" if probe and not probe.usable else ""
        return Accel("kvm", KVM_ARGS, "KVM requested" + warn)
    if probe is None:
        return Accel("tcg", tcg, "KVM not probed: using TCG")
    if probe.usable:
        return Accel("kvm", KVM_ARGS, f"KVM probe passed: {probe.reason}")
    return Accel("tcg", tcg, f"KVM unusable ({probe.reason}): using TCG")


def kvm_api_version(dev: str = "/dev/kvm") -> int:
    """KVM_GET_API_VERSION on the device opened read-write; OSError when it cannot."""
    fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    try:
        return int(fcntl.ioctl(fd, KVM_GET_API_VERSION))
    finally:
        os.close(fd)


def _qemu_command(firmware: Firmware, tools: BootTools) -> list[str]:
    program = f"qemu-system-{firmware.arch}"
    if tools.root is None:
        return [which(program)]
    return [*tools.command(program), *tools.qemu_data_args()]


def qemu_version(command: str | Sequence[str], tools: BootTools = HOST) -> str:
    argv = [command] if isinstance(command, str) else list(command)
    first = output([*argv, "--version"], env=tools.qemu_env()).splitlines()
    return first[0].strip() if first else "unknown"


def _boot_firmware(
    firmware: Firmware, work: Path, timeout: float, tools: BootTools
) -> tuple[bool, str]:
    vars_copy = work / "vars.fd"
    shutil.copyfile(firmware.vars_template, vars_copy)
    serial, log = work / "serial.log", work / "qemu.log"
    argv = [*_qemu_command(firmware, tools), *firmware_args(firmware, vars_copy)]
    argv += [*KVM_ARGS, "-m", "256M", "-nodefaults", "-display", "none", "-no-reboot"]
    argv += ["-serial", f"file:{serial}"]
    deadline = time.monotonic() + timeout
    with QemuProcess(argv, log, env=tools.qemu_env()) as qemu:
        while time.monotonic() < deadline:
            err = log.read_text(errors="replace")
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if any(m in text for m in READY_MARKERS):
                return True, "OVMF reached BdsDxe under KVM"
            bad = next((m for m in FAIL_MARKERS if m in err), None)
            if bad:
                return False, f"qemu: {_first_line(err, bad)}"
            if qemu.poll() is not None:
                return False, f"qemu exited ({qemu.poll()}): {_tail(err)}"
            time.sleep(0.1)
    return False, f"firmware printed nothing under KVM within {timeout:g} s"


def _first_line(text: str, marker: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if marker in ln), "")[:200]


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[:300] or "no output"


def probe_kvm(firmware: Firmware, timeout: float = 12.0, tools: BootTools = HOST) -> KvmProbe:
    """Really probe KVM: ioctl on /dev/kvm, then boot the firmware under KVM with a deadline."""
    start = time.monotonic()
    kernel = os.uname().release
    qver = qemu_version(_qemu_command(firmware, tools), tools)

    def done(ok: bool, reason: str) -> KvmProbe:
        return KvmProbe(ok, reason, round(time.monotonic() - start, 2), kernel, qver, time.time())

    try:
        api = kvm_api_version()
    except OSError as err:
        return done(False, f"/dev/kvm unusable: {err.strerror or err}")
    if api != KVM_API_VERSION:
        return done(False, f"KVM_GET_API_VERSION returned {api}, expected {KVM_API_VERSION}")
    with scratch_dir("kvm-probe", work_parent()) as tmp:  # swept after a SIGKILL too
        ok, reason = _boot_firmware(firmware, tmp, timeout, tools)
    return done(ok, reason)


def _cache_key(kernel: str, qver: str) -> str:
    return f"{kernel}|{qver}"


def load_cached(path: Path, kernel: str, qver: str, now: float) -> KvmProbe | None:
    try:
        entries = json.loads(path.read_text())
        entry = entries[_cache_key(kernel, qver)]
        probe = KvmProbe(**{**entry, "cached": True})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return probe if 0 <= now - probe.checked_at < CACHE_TTL else None


def store_cached(path: Path, probe: KvmProbe) -> None:
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    entries[_cache_key(probe.kernel, probe.qemu_version)] = {**asdict(probe), "cached": False}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(entries, indent=2) + "\n")


def cached_probe_kvm(
    firmware: Firmware, timeout: float = 12.0, tools: BootTools = HOST
) -> KvmProbe:
    """probe_kvm, answered from cache_dir()/kvm-probe.json when fresh (24 h, same kernel+QEMU)."""
    path = paths.cache_dir() / "kvm-probe.json"
    qver = qemu_version(_qemu_command(firmware, tools), tools)
    hit = load_cached(path, os.uname().release, qver, time.time())
    if hit is not None:
        return hit
    probe = probe_kvm(firmware, timeout, tools)
    with contextlib.suppress(OSError):  # a read-only cache only costs the next run a probe
        store_cached(path, probe)
    return probe


def resolve_accel(requested: str, firmware: Firmware, tools: BootTools = HOST) -> Accel:
    """Apply DPS_COMPOSER_ACCEL (when the request is auto), probe only if auto, then decide."""
    env = paths.accel()
    if requested == "auto" and env:
        requested = env
    if requested not in ACCELS:
        raise ComposerError(f"unknown accelerator {requested!r}: use one of {', '.join(ACCELS)}")
    probe = cached_probe_kvm(firmware, tools=tools) if requested == "auto" else None
    return choose_accel(requested, probe, firmware.arch)
