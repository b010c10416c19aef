"""PCR 7 predicted for the firmware a boot runs: a firmware built without Secure Boot support
measures the SecureBoot variable with no data (edk2 Tcg2Dxe)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from composer.image.firmware import Firmware
from composer.image.varstore import EFI_GLOBAL
from composer.judge.firmware_pcrs import for_firmware
from composer.judge.verdict import Expectations
from composer.spec.eventlog import variable_event_data
from composer.toolchain.boottools import HOST, BootTools


def digest(name: str, value: bytes) -> str:
    return hashlib.sha256(variable_event_data(EFI_GLOBAL, name, value)).hexdigest()


def extend(digests: list[str]) -> str:
    pcr = bytes(32)
    for d in digests:
        pcr = hashlib.sha256(pcr + bytes.fromhex(d)).digest()
    return pcr.hex()


def firmware(features: frozenset[str]) -> Firmware:
    return Firmware(
        Path("60.json"), "", "x86_64", "q35", Path("CODE.fd"), "raw", Path("VARS.fd"), "raw",
        features, False,
    )  # fmt: skip


SEP = hashlib.sha256(bytes(4)).hexdigest()
EVENTS = [
    {"pcr": 7, "type": "EV_EFI_VARIABLE_DRIVER_CONFIG", "digest": digest("SecureBoot", b"\0"),
     "what": "SecureBoot (1 bytes)"},
    {"pcr": 7, "type": "EV_EFI_VARIABLE_DRIVER_CONFIG", "digest": digest("PK", b""),
     "what": "PK (0 bytes)"},
    {"pcr": 7, "type": "EV_SEPARATOR", "digest": SEP, "what": "separator"},
]  # fmt: skip
EXP = Expectations(
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
    expected_pcrs={7: extend([str(e["digest"]) for e in EVENTS]), 11: "ab" * 32},
    pcr_events={7: EVENTS},
)
TREE = BootTools(Path("/cache/trees/boot-x"))


def test_tree_firmware_without_secure_boot_has_no_secureboot_variable() -> None:
    exp, note = for_firmware(EXP, firmware(frozenset()), TREE)
    want = extend([digest("SecureBoot", b""), digest("PK", b""), SEP])
    assert exp.expected_pcrs[7] == want != EXP.expected_pcrs[7]
    assert exp.expected_pcrs[11] == EXP.expected_pcrs[11]
    assert exp.pcr_events[7][0]["what"] == "SecureBoot (0 bytes)"
    assert exp.pcr_events[7][1:] == EVENTS[1:]
    assert "without a SecureBoot variable" in note


def test_secure_boot_firmware_and_host_firmware_keep_the_prediction() -> None:
    assert for_firmware(EXP, firmware(frozenset({"secure-boot"})), TREE) == (EXP, "")
    assert for_firmware(EXP, firmware(frozenset()), HOST) == (EXP, "")


def test_a_reported_prediction_is_re_predicted_too() -> None:
    reported = Expectations(EXP.root_type_uuid, reported_pcrs={7: "00"}, pcr_events={7: EVENTS})
    exp, _ = for_firmware(reported, firmware(frozenset()), TREE)
    assert exp.reported_pcrs[7] == extend([digest("SecureBoot", b""), digest("PK", b""), SEP])
    assert 7 not in exp.expected_pcrs
