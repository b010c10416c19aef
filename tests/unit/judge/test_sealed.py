"""The verdict on a signed PCR policy and its sealed volumes, from check records shaped as the
in-guest check writes them (composer/data/check/dps-composer-check json_sealed)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from composer.judge.sealed import sealed_checks, token_fingerprint, tpm2_tokens
from composer.judge.verdict import Expectations, judge
from composer.measure.pcrsig import fingerprint_of

from .test_verdict import needs_sh, run_lib

VECTORS = Path(__file__).parents[1] / "measure" / "vectors" / "pcrsig"
PEM = (VECTORS / "tpm2-pcr-public-key.pem").read_text()
FP = fingerprint_of(PEM.encode())
SRV = "3b8f8425-20e0-4f3b-907f-1a25a76f98e8"
ROOT = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
PCR11 = "ab" * 32


def luks(pubkey_pem: str = PEM, pcrs: list[int] | None = None) -> str:
    """A LUKS2 header's JSON with the token as systemd-repart 257 wrote it in a booted image."""
    token = {
        "type": "systemd-tpm2",
        "keyslots": ["0"],
        "tpm2-pcrs": [],
        "tpm2_pubkey": base64.b64encode(pubkey_pem.encode()).decode(),
        "tpm2_pubkey_pcrs": [11] if pcrs is None else pcrs,
    }
    return json.dumps({"keyslots": {"0": {"type": "luks2"}}, "tokens": {"0": token}})


def volume(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "srv",
        "device": "/dev/vda3",
        "type": SRV,
        "luks": luks(),
        "mapped": True,
        "mounted": "/dev/mapper/srv",
        "unit": {"load": "loaded", "active": "active", "result": "success"},
        "log": [],
    }
    return {**base, **changes}


def guest(*volumes: dict[str, Any], pem: str | None = PEM) -> dict[str, Any]:
    return {
        "pcr_policy": {"public_key": pem, "signature": '{"sha256":[]}' if pem else None},
        "sealed": list(volumes),
        "tpm": {"pcrs": {"11": PCR11}},
        "repart_log": ["mkfs binary for ext4 is not available."],
    }


def checks(g: dict[str, Any], expected_pcr11: str | None = None) -> dict[str, tuple[bool, str]]:
    return {n: (ok, d) for n, ok, d in sealed_checks(g, FP, [("srv", SRV)], expected_pcr11)}


def test_a_volume_unlocked_by_the_tpm_passes() -> None:
    got = checks(guest(volume()))
    assert got["pcr-policy"][0] and FP[:16] in got["pcr-policy"][1]
    ok, detail = got["sealed-srv"]
    assert ok and "unlocked by the TPM and mounted" in detail and "PCR [11]" in detail


def test_the_first_boot_enrolls() -> None:
    fresh = volume(mapped=False, mounted=None, unit={"load": "not-found"})
    ok, detail = checks(guest(fresh))["sealed-srv"]
    assert ok and "created and enrolled this boot" in detail


def test_a_refused_unlock_fails_naming_the_volume_and_the_pcr() -> None:
    failed = volume(
        mapped=False,
        mounted=None,
        unit={"load": "loaded", "active": "failed", "result": "exit-code"},
        log=["Failed to unseal secret using TPM2: Operation not permitted"],
    )
    ok, detail = checks(guest(failed), expected_pcr11="cd" * 32)["sealed-srv"]
    assert not ok
    assert "/srv" in detail and "Failed to unseal secret using TPM2" in detail
    assert f"PCR 11 = {PCR11}, the UKI's policy was signed for {'cd' * 32}" in detail


def test_a_missing_volume_says_what_repart_said() -> None:
    ok, detail = checks(guest())["sealed-srv"]
    assert not ok and "dps-sealed-srv" in detail and "mkfs binary" in detail


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"luks": luks(pcrs=[7])}, "over PCR [7]"),
        ({"luks": json.dumps({"tokens": {}})}, "no systemd-tpm2 token"),
        ({"luks": None}, "no systemd-tpm2 token"),
        ({"type": ROOT}, "has type"),
    ],
)
def test_a_volume_bound_otherwise_fails(change: dict[str, Any], words: str) -> None:
    ok, detail = checks(guest(volume(**change)))["sealed-srv"]
    assert not ok and words in detail


def test_a_volume_bound_to_another_key_fails() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    ok, detail = checks(guest(volume(luks=luks(pubkey_pem=pem))))["sealed-srv"]
    assert not ok and f"expected {FP[:16]}" in detail


def test_a_uki_with_another_key_or_none_fails_the_policy_check() -> None:
    ok, detail = checks(guest(volume(), pem=None))["pcr-policy"]
    assert not ok and "no .pcrpkey" in detail
    g = guest(volume())
    g["pcr_policy"]["signature"] = None
    ok, detail = checks(g)["pcr-policy"]
    assert not ok and "no .pcrsig" in detail


def test_token_keys_in_der_are_read_too() -> None:
    der = serialization.load_pem_public_key(PEM.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert token_fingerprint({"tpm2-pubkey": base64.b64encode(der).decode()}) == FP
    assert token_fingerprint({"tpm2-pubkey": "!!"}) is None
    assert tpm2_tokens("not json") == []


def test_the_verdict_carries_the_checks_and_fails_on_them() -> None:
    exp = Expectations(root_type_uuid=ROOT, tpm=False, pcr_policy=FP, sealed=(("srv", SRV, 1),))
    record = {**guest(volume(mapped=False, mounted=None, unit={"active": "failed"})),
              "system_state": "degraded", "root": {}}  # fmt: skip
    verdict = judge(record, [], exp)
    names = {c.name: c.passed for c in verdict.checks}
    assert names["pcr-policy"] and not names["sealed-srv"] and not verdict.passed


def test_no_policy_no_checks() -> None:
    assert sealed_checks(guest(volume()), None, [("srv", SRV)]) == []


# --- the guest script's part, run with the host's /bin/sh ------------------------------------


@needs_sh
def test_the_check_reports_the_exported_key_and_the_sealed_volumes(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text(PEM)
    (tmp_path / "dps-sealed-srv").symlink_to("/dev/null")
    env = {
        "PCR_PUBKEY": str(tmp_path / "key.pem"),
        "PCR_SIGNATURE": str(tmp_path / "none.json"),
        "SEALED_GLOB": f"{tmp_path}/dps-sealed-*",
    }
    policy = json.loads(run_lib("json_pcr_policy", env))
    assert policy == {"public_key": PEM.rstrip("\n"), "signature": None}
    assert fingerprint_of(policy["public_key"].encode()) == FP
    (volume,) = json.loads(run_lib("json_sealed", env))
    assert volume["name"] == "srv" and volume["device"] == "/dev/null"
    assert volume["luks"] is None and volume["mapped"] in (True, False)
    assert set(volume["unit"]) == {"load", "active", "result"}
    empty = {**env, "SEALED_GLOB": f"{tmp_path}/none-*"}
    assert json.loads(run_lib("json_sealed", empty)) == []
