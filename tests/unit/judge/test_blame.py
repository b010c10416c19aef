"""Who failed a boot: the image or the host. Evidence shapes are those of real boots (tpm2-tss's
Esys error lines, the kernel's TPM driver messages, QEMU's tpm-emulator errors)."""

from __future__ import annotations

import copy
from typing import Any

from composer.judge.blame import HostFacts, assign, no_result_fault
from composer.judge.serial import scan_text
from composer.judge.verdict import Expectations, judge

ROOT = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
EXP = Expectations(ROOT, expected_pcrs={11: "aa" * 32})
# captured from a boot whose swtpm the host did not schedule for 2 s (trixie, tpm2-tss 4.1)
ESYS = [
    "systemd-pcrphase-initrd.service: ERROR:tcti:src/tss2-tcti/tcti-device.c:198:"
    "tcti_device_receive() Failed to get response size fd 4, got errno 62: Timer expired",
    "systemd-pcrphase-initrd.service: ERROR:esys:src/tss2-esys/api/Esys_PCR_Extend.c:295:"
    "Esys_PCR_Extend_Finish() Received a non-TPM Error",
    "systemd-pcrphase-initrd.service: ERROR:esys:src/tss2-esys/api/Esys_PCR_Extend.c:100:"
    "Esys_PCR_Extend() Esys Finish ErrorCode (0x000a000a)",
    "systemd-pcrphase-initrd.service: systemd-pcrphase-initrd.service: Main process exited, "
    "code=exited, status=1/FAILURE",
]
KERNEL = "[   74.190411] tpm tpm0: Operation Timed out\r\n"


def guest(**changes: Any) -> dict[str, Any]:
    g: dict[str, Any] = {
        "root": {"source": "/dev/vda2", "fstype": "ext4", "parttype": ROOT},
        "cmdline": "console=ttyS0",
        "system_state": "running",
        "failed_units": [],
        "failed_logs": [],
        "fstab": [],
        "tpm": {"tpm0": True, "tpmrm0": True, "pcrs": {"11": "aa" * 32}},
    }
    g.update(copy.deepcopy(changes))
    return g


def verdict_for(g: dict[str, Any] | None, console: str = "", **facts: Any) -> Any:
    events = scan_text(console)
    return assign(judge(g, events, EXP), HostFacts(**{"reason": "check", **facts}), events)


def test_a_tpm_io_error_failing_a_tpm_unit_is_the_hosts() -> None:
    g = guest(
        system_state="degraded",
        failed_units=["systemd-pcrphase-initrd.service loaded failed failed TPM PCR Barrier"],
        failed_logs=ESYS,
    )
    v = verdict_for(g)
    assert v.outcome == "error" and not v.passed
    assert v.host_fault["reason"] == "tpm-io-error" and "errno 62" in v.host_fault["detail"]
    (failing,) = [c for c in v.checks if not c.passed]
    assert failing.name == "no-failed-units" and failing.host_fault == "tpm-io-error"


def test_the_kernels_tpm_timeout_explains_a_tpm_unit_without_its_own_log() -> None:
    g = guest(failed_units=["systemd-pcrmachine.service loaded failed failed"])
    assert verdict_for(g).outcome == "fail"  # no evidence: the image's
    v = verdict_for(g, console=KERNEL)
    assert v.outcome == "error" and v.check("no-failed-units").host_fault == "tpm-io-error"


def test_another_failed_unit_beside_it_keeps_the_verdict_a_fail() -> None:
    g = guest(
        failed_units=[
            "systemd-pcrphase-initrd.service loaded failed failed",
            "nginx.service loaded failed failed",
        ],
        failed_logs=[*ESYS, "nginx.service: bind() to 0.0.0.0:80 failed"],
    )
    v = verdict_for(g)
    assert v.outcome == "fail" and v.check("no-failed-units").host_fault == ""
    assert any("not the cause of any failed check" in n for n in v.notes)


def test_a_wrong_pcr_with_tpm_errors_is_the_hosts_without_them_the_images() -> None:
    g = guest(tpm={"tpm0": True, "tpmrm0": True, "pcrs": {"11": "bb" * 32}})
    assert verdict_for(g).outcome == "fail"
    v = verdict_for(g, console=KERNEL)
    assert v.outcome == "error" and v.check("pcr-11").host_fault == "tpm-io-error"


def test_unrelated_failure_with_no_host_evidence_is_the_images() -> None:
    g = guest(root={"source": "/dev/vda2", "fstype": "ext4", "parttype": "0" * 32})
    v = verdict_for(g, console=KERNEL)
    assert v.outcome == "fail" and v.host_fault is None
    assert any("not the cause of any failed check" in n for n in v.notes)


def test_no_result_faults() -> None:
    assert no_result_fault(HostFacts("exited", 0, "")) is None  # the guest ended it
    assert no_result_fault(HostFacts("exited", 1, "", powered_off=True)) is None
    died = no_result_fault(HostFacts("exited", -9, "qemu-system-x86_64: terminating\n"))
    assert died is not None and died.reason == "qemu-died" and "signal 9" in died.detail
    start = no_result_fault(HostFacts("exited", 1, "qemu: tpm-emulator: TPM result for CMD_INIT"))
    assert start is not None and "status 1" in start.detail and "CMD_INIT" in start.detail
    swtpm = no_result_fault(HostFacts("helper", None, "", helper_died="swtpm exited with 1"))
    assert swtpm is not None and swtpm.reason == "swtpm-died"
    record = no_result_fault(HostFacts("record", None, "", record_problem="damaged"))
    assert record is not None and record.reason == "check-record"
    assert no_result_fault(HostFacts("timeout", None, "")) is None  # the VM had its time
    slow = no_result_fault(HostFacts("timeout", None, "", overloaded="waited 900 s"))
    assert slow is not None and slow.reason == "host-overloaded"
    assert no_result_fault(HostFacts("fatal", None, "", overloaded="x")) is None


def test_no_result_from_a_dead_qemu_fails_every_check_as_an_error() -> None:
    console = "Linux version 6.12\r\n"
    v = verdict_for(None, console=console, reason="exited", exit_status=-9, qemu_log="killed")
    assert v.outcome == "error" and all(c.host_fault == "qemu-died" for c in v.checks)


def test_a_kernel_panic_is_the_images_even_if_qemu_then_fails() -> None:
    v = verdict_for(None, console="Kernel panic - not syncing: VFS\r\n", reason="fatal")
    assert v.outcome == "fail" and v.host_fault is None
