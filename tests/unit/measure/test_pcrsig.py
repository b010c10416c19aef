"""The signed PCR policy check against a vector made with systemd-measure 257 (`systemd-measure
sign --linux=… --osrel=… --cmdline=… --initrd=… --pcrpkey=vectors/pcrsig/tpm2-pcr-public-key.pem
--bank=sha256 --phase=…` for the four phases after the stub; the private key was thrown away)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from composer.measure.pcr11 import PHASES
from composer.measure.pcrsig import (
    fingerprint_of,
    parse_pcrsig,
    policy_digest,
    signed_policy,
    verifies,
)

VECTORS = Path(__file__).parent / "vectors" / "pcrsig"
PUBLIC = (VECTORS / "tpm2-pcr-public-key.pem").read_bytes()
PCRSIG = (VECTORS / "pcrsig.json").read_bytes()
SECTIONS = {
    ".linux": b"kernel",
    ".osrel": b"ID=x\n",
    ".cmdline": b"console=ttyS0",
    ".initrd": b"initrd",
    ".pcrpkey": PUBLIC,
}
FINGERPRINT = "d69619ef190bcd984ad49138a9bf56c40aa017fb6b75bdad780b6072653bd0bd"
# systemd-measure calculate of SECTIONS, phase enter-initrd, and the "pol" sign wrote for it
ENTER_INITRD = "de6949398d7c9c638e52831ffed0e8c00cc72716f1afb857cf30372b565e519e"
ENTER_INITRD_POLICY = "ac8e47e16115154afcd1c17cd3184e071d44604fd9065c225ed98644df58a27d"


def test_the_fingerprint_is_systemd_measures_pkfp() -> None:
    assert fingerprint_of(PUBLIC) == FINGERPRINT
    assert {s.fingerprint for s in parse_pcrsig(PCRSIG)} == {FINGERPRINT}


def test_the_policy_digest_is_the_one_systemd_measure_signed() -> None:
    assert policy_digest({11: bytes.fromhex(ENTER_INITRD)}) == ENTER_INITRD_POLICY


def test_every_signature_of_the_vector_verifies() -> None:
    sigs = parse_pcrsig(PCRSIG + b"\0")  # the section is NUL-terminated
    assert len(sigs) == 4 and all(s.pcrs == (11,) and s.bank == "sha256" for s in sigs)
    assert all(verifies(s, PUBLIC) for s in sigs)


def test_a_changed_signature_or_policy_does_not_verify() -> None:
    sig = parse_pcrsig(PCRSIG)[0]
    flipped = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
    assert not verifies(type(sig)(sig.bank, sig.pcrs, sig.fingerprint, sig.policy, flipped), PUBLIC)
    other = "00" * 32
    assert not verifies(
        type(sig)(sig.bank, sig.pcrs, sig.fingerprint, other, sig.signature), PUBLIC
    )


def test_the_policy_names_the_signed_phases() -> None:
    policy = signed_policy({**SECTIONS, ".pcrsig": PCRSIG})
    assert policy is not None
    assert policy.fingerprint == FINGERPRINT
    assert policy.signed == PHASES[1:]
    assert policy.unsigned == ("",)  # the stub's own state: no phase was signed for it
    assert policy.stray == 0


def test_a_changed_command_line_leaves_every_phase_unsigned() -> None:
    policy = signed_policy({**SECTIONS, ".cmdline": b"console=ttyS0 quiet", ".pcrsig": PCRSIG})
    assert policy is not None
    assert policy.signed == () and policy.stray == 4


def test_a_signature_by_another_key_is_not_counted() -> None:
    doc = json.loads(PCRSIG)
    for entry in doc["sha256"]:
        entry["sig"] = base64.b64encode(b"\1" * 256).decode()
    policy = signed_policy({**SECTIONS, ".pcrsig": json.dumps(doc).encode()})
    assert policy is not None and policy.signed == () and policy.stray == 4


def test_no_pcrsig_is_no_policy() -> None:
    assert signed_policy(SECTIONS) is None


@pytest.mark.parametrize("data", [b"", b"{", b'{"sha256": [{"pcrs": [11]}]}', b"\xff"])
def test_a_malformed_pcrsig_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="pcrsig"):
        parse_pcrsig(data)
