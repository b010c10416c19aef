"""The manifest's PCR 7 prediction, made for the firmware this boot really runs.

edk2 measures the SecureBoot variable into PCR 7 with its value, and with no data when the
variable does not exist (SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c, MeasureAllSecureVariables /
ReadAndMeasureSecureVariable); the variable exists only in builds with SECURE_BOOT_ENABLE.
Debian built OVMF_CODE_4M.fd with it up to 2022.11 (bookworm: SecureBoot = 0 when no PK is
enrolled, which is what the build predicts, composer/measure/predict.py) and without it from
trixie's 2025.02 on; the descriptors of both say the same (no "secure-boot" feature). So for
firmware from the boot tools tree that lacks the secure-boot feature, the SecureBoot event is
the empty variable's, and PCR 7 is the same events extended with that one replaced: still
one exact value, never "either".
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from composer.image.firmware import Firmware
from composer.image.varstore import EFI_GLOBAL
from composer.judge.verdict import Expectations
from composer.spec.eventlog import variable_event_data
from composer.toolchain.boottools import BootTools

PCR7 = 7
_SECURE_BOOT = "SecureBoot"
NOTE = "without a SecureBoot variable"  # in the verdict's note when PCR 7 was re-predicted


def has_secure_boot_variable(firmware: Firmware, tools: BootTools) -> bool:
    """Whether the firmware defines the SecureBoot variable (see the module docstring)."""
    return firmware.secure_boot or tools.root is None


def _absent_variable_event(event: dict[str, Any], bank: str) -> dict[str, Any]:
    digest = hashlib.new(bank, variable_event_data(EFI_GLOBAL, _SECURE_BOOT, b"")).hexdigest()
    return {**event, "digest": digest, "what": f"{_SECURE_BOOT} (0 bytes)"}


def _is_secure_boot(event: dict[str, Any]) -> bool:
    return str(event.get("what", "")).startswith(_SECURE_BOOT + " ")


def without_secure_boot_variable(
    events: list[dict[str, Any]], bank: str = "sha256"
) -> list[dict[str, Any]]:
    """Predicted PCR 7 events as a firmware without a SecureBoot variable measures them."""
    return [_absent_variable_event(e, bank) if _is_secure_boot(e) else e for e in events]


def _extend(events: list[dict[str, Any]], bank: str) -> str:
    pcr = bytes(hashlib.new(bank).digest_size)
    for event in events:
        pcr = hashlib.new(bank, pcr + bytes.fromhex(str(event["digest"]))).digest()
    return pcr.hex()


def for_firmware(
    exp: Expectations, firmware: Firmware, tools: BootTools, bank: str = "sha256"
) -> tuple[Expectations, str]:
    """``exp`` with PCR 7 predicted for ``firmware``, and a note when it was re-predicted."""
    events = exp.pcr_events.get(PCR7) or []
    if has_secure_boot_variable(firmware, tools) or not events:
        return exp, ""
    if not any(str(e.get("what", "")).startswith(_SECURE_BOOT + " ") for e in events):
        return exp, ""
    adjusted = [
        _absent_variable_event(e, bank)
        if str(e.get("what", "")).startswith(_SECURE_BOOT + " ")
        else e
        for e in events
    ]
    value = _extend(adjusted, bank)
    expected = dict(exp.expected_pcrs)
    reported = dict(exp.reported_pcrs)
    if PCR7 in expected:
        expected[PCR7] = value
    if PCR7 in reported:
        reported[PCR7] = value
    note = (
        f"PCR 7 predicted for {firmware.code.name} {NOTE} "
        "(a firmware built without Secure Boot support)"
    )
    events_by_pcr = {**exp.pcr_events, PCR7: adjusted}
    new = replace(exp, expected_pcrs=expected, reported_pcrs=reported, pcr_events=events_by_pcr)
    return new, note
