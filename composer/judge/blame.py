"""Who failed a boot: the image, or the host it ran on.

A verdict FAIL says the image is broken. When the evidence points at the machine that ran the
test instead (QEMU or swtpm died, the check record was damaged on the serial line, the VM could
not get a CPU long enough to finish, the emulated TPM did not answer in time), the checks it
explains are marked as the host's fault: the verdict is then an infrastructure error (exit code
4, JUnit ``<error>``), never the image's FAIL. A check the evidence does not explain stays the
image's, so a broken image is still reported as broken on a busy host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from composer.judge.serial import SerialEvent
from composer.judge.verdict import Check, Verdict, failed_units

# tpm2-tss: TSS2_TCTI_RC_IO_ERROR is 0x000a000a (TCTI layer 10, base error 10, tss2_common.h):
# the TPM device did not answer, which says nothing about what the image asked of it. Its
# device TCTI logs the errno first: 62 (ETIME) when the kernel's TPM driver gave up waiting.
TPM_TRANSPORT = re.compile(
    r"ErrorCode \(0x000a000a\)|TSS2_TCTI_RC_IO_ERROR|tcti_device_\w+\(\) .*errno 62"
    r"|tpm-emulator: |tpm_emulator: |tpm tpm\d+: (?:Operation Timed out|tpm_(?:try_)?transmit: )"
)
# units whose whole job is talking to the TPM (systemd's tpm2-setup, pcrphase, pcrextend, ...)
TPM_UNIT = re.compile(r"^systemd-(?:tpm2|pcr)[\w@.\\-]*\.(?:service|socket)$")


@dataclass(frozen=True)
class HostFault:
    reason: str  # swtpm-died | qemu-died | check-record | host-overloaded | tpm-io-error
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class HostFacts:
    """What the host side saw of a boot (not the guest's own report)."""

    reason: str  # how the watch ended: check, fatal, exited, timeout, login, ...
    exit_status: int | None = None  # QEMU's, when it ended by itself
    qemu_log: str = ""  # QEMU's own output
    helper_died: str = ""  # swtpm ended while the guest still needed it: how
    record_problem: str = ""  # the check record arrived damaged or truncated
    overloaded: str = ""  # the deadline passed while the VM mostly waited for a CPU
    powered_off: bool = False  # the guest powered itself off


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:] if ln.strip())


def no_result_fault(facts: HostFacts) -> HostFault | None:
    """A host fault that explains why no usable check result came."""
    if facts.helper_died:
        return HostFault("swtpm-died", facts.helper_died)
    if facts.record_problem:
        return HostFault("check-record", facts.record_problem)
    if facts.reason == "exited" and facts.exit_status not in (0, None) and not facts.powered_off:
        how = (
            f"killed by signal {-facts.exit_status}"
            if facts.exit_status is not None and facts.exit_status < 0
            else f"exited with status {facts.exit_status}"
        )
        return HostFault("qemu-died", f"QEMU {how}: {_tail(facts.qemu_log) or 'no output'}")
    if facts.reason == "timeout" and facts.overloaded:
        return HostFault("host-overloaded", facts.overloaded)
    return None


def _tpm_lines(
    guest: dict[str, Any] | None, events: Iterable[SerialEvent], qemu_log: str
) -> list[str]:
    lines = [e.line for e in events if e.kind == "host"]
    lines += [ln for ln in qemu_log.splitlines() if TPM_TRANSPORT.search(ln)]
    if guest:
        lines += [str(ln) for ln in guest.get("failed_logs") or [] if TPM_TRANSPORT.search(str(ln))]
    return lines


def _unit_explained(unit: str, guest: dict[str, Any], kernel_tpm: bool) -> bool:
    logs = [str(ln) for ln in guest.get("failed_logs") or [] if str(ln).startswith(f"{unit}: ")]
    if any(TPM_TRANSPORT.search(ln) for ln in logs):
        return True
    return kernel_tpm and bool(TPM_UNIT.match(unit))


def _tpm_explains(check: Check, guest: dict[str, Any] | None, kernel_tpm: bool) -> bool:
    if check.name == "tpm" or check.name.startswith("pcr-"):
        return True  # a command the TPM did not answer: a measurement or the device missing
    if check.name == "no-failed-units" and guest:
        units = failed_units(guest)
        return bool(units) and all(_unit_explained(u, guest, kernel_tpm) for u in units)
    return False


def _mark(checks: Sequence[Check], fault: HostFault, explains: Any) -> list[Check]:
    return [
        replace(c, host_fault=fault.reason) if not c.passed and explains(c) else c for c in checks
    ]


def assign(verdict: Verdict, facts: HostFacts, events: Sequence[SerialEvent]) -> Verdict:
    """Mark the failing checks the host's evidence explains; note the evidence either way."""
    fault = no_result_fault(facts) if verdict.guest is None else None
    if fault is not None:
        verdict.checks = _mark(verdict.checks, fault, lambda _c: True)
    else:
        lines = _tpm_lines(verdict.guest, events, facts.qemu_log)
        if not lines:
            return verdict
        kernel_tpm = any(e.kind == "host" for e in events)
        fault = HostFault("tpm-io-error", f"the emulated TPM did not answer: {lines[0][:300]}")
        verdict.checks = _mark(
            verdict.checks, fault, lambda c: _tpm_explains(c, verdict.guest, kernel_tpm)
        )
        if not any(c.host_fault for c in verdict.checks):
            verdict.notes.append(f"host: {fault.detail} (not the cause of any failed check)")
            return verdict
    verdict.host_fault = fault.as_dict()
    if verdict.outcome == "fail":
        verdict.notes.append(f"host fault beside the image's failure: {fault.detail}")
    return verdict
