"""Judge the signed PCR policy and the sealed volumes from the guest's check record (pure).

``pcr-policy``: the public key systemd-stub exported from the booted UKI's ``.pcrpkey``
(/run/systemd/tpm2-pcr-public-key.pem) is the manifest's, and its ``.pcrsig`` reached the OS.
``sealed-NAME``, one per volume: its partition exists with the volume's DPS type, its LUKS2
header has a systemd-tpm2 token bound to that public key over PCR 11 (systemd's token JSON,
docs/measured.md), and it was unlocked by the TPM (systemd-cryptsetup with ``headless=true``
and no other way in) and mounted, or was made this boot (the first: systemd-gpt-auto-generator
ran before systemd-repart created it). A volume whose unlock failed FAILs with systemd's words
and the PCR 11 the TPM held against the one the policy was signed for.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization

from composer.measure.pcrsig import fingerprint_of

CheckTuple = tuple[str, bool, str]
TOKEN_TYPE = "systemd-tpm2"


def _short(fp: str | None) -> str:
    return f"{fp[:16]}…" if fp else "none"


def _pem_fingerprint(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return fingerprint_of(text.encode())
    except ValueError:
        return None


def _field(token: dict[str, Any], name: str) -> Any:
    """A token field by systemd's name: systemd 257 writes ``tpm2_pubkey`` and
    ``tpm2_pubkey_pcrs`` (systemd v257 tpm2-util.c, tpm2_make_luks2_json), others ``tpm2-…``."""
    return token.get(name, token.get(name.replace("-", "_")))


def token_fingerprint(token: dict[str, Any]) -> str | None:
    """The public key of a systemd-tpm2 token (``tpm2_pubkey``: base64 of the PEM or DER key
    systemd-repart/-cryptenroll was given), as systemd's pkfp."""
    raw = _field(token, "tpm2-pubkey")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not data.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_der_public_key(data)
        except ValueError:
            return None
        data = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return _pem_fingerprint(data.decode("ascii", "replace"))


def luks_tokens(luks_json: str | None, token_type: str) -> list[dict[str, Any]]:
    """The tokens of one type in a LUKS2 header's JSON metadata (cryptsetup luksDump
    --dump-json-metadata); none when it is not that."""
    try:
        meta = json.loads(luks_json or "{}")
    except ValueError:
        return []
    tokens = meta.get("tokens") if isinstance(meta, dict) else None
    if not isinstance(tokens, dict):
        return []
    return [t for t in tokens.values() if isinstance(t, dict) and t.get("type") == token_type]


def tpm2_tokens(luks_json: str | None) -> list[dict[str, Any]]:
    return luks_tokens(luks_json, TOKEN_TYPE)


def policy_check(guest: dict[str, Any], want: str) -> CheckTuple:
    policy = guest.get("pcr_policy") or {}
    got = _pem_fingerprint(policy.get("public_key"))
    if got is None:
        return (
            "pcr-policy",
            False,
            (
                "the booted UKI exported no PCR public key (no .pcrpkey reached "
                "/run/systemd/tpm2-pcr-public-key.pem)"
            ),
        )
    if got != want:
        return (
            "pcr-policy",
            False,
            (
                f"the booted UKI's .pcrpkey is key {_short(got)}, the image was signed with "
                f"{_short(want)}"
            ),
        )
    signed = "with its .pcrsig" if policy.get("signature") else "but no .pcrsig"
    return (
        "pcr-policy",
        bool(policy.get("signature")),
        (f"the booted UKI carries the policy key {_short(got)} {signed}"),
    )


def _binding(tokens: list[dict[str, Any]], want: str) -> tuple[bool, str]:
    if not tokens:
        return False, "no systemd-tpm2 token in its LUKS2 header"
    token = tokens[0]
    fp = token_fingerprint(token)
    pcrs = _field(token, "tpm2-pubkey-pcrs")
    literal = _field(token, "tpm2-pcrs") or []
    detail = f"TPM2 token bound to policy key {_short(fp)} over PCR {pcrs}"
    detail += f" and PCR values {literal}" if literal else ""
    return fp == want and pcrs == [11], detail


def _mismatch(guest: dict[str, Any], expected_pcr11: str | None) -> str:
    got = str(((guest.get("tpm") or {}).get("pcrs") or {}).get("11") or "unreadable").lower()
    if expected_pcr11 is None or got == expected_pcr11:
        return f"PCR 11 = {got}"
    return f"PCR 11 = {got}, the UKI's policy was signed for {expected_pcr11}"


def volume_check(
    name: str, found: dict[str, Any] | None, want: str, type_uuid: str, guest: dict[str, Any],
    expected_pcr11: str | None,
) -> CheckTuple:  # fmt: skip
    check = f"sealed-{name}"
    if found is None:
        log = "; ".join(str(x) for x in (guest.get("repart_log") or [])[-3:])
        return (
            check,
            False,
            (
                f"/{name}: no partition dps-sealed-{name} (systemd-repart did not make it: "
                f"{log or 'no log'})"
            ),
        )
    if str(found.get("type") or "").lower() != type_uuid.lower():
        return check, False, f"/{name}: {found.get('device')} has type {found.get('type')}"
    bound, binding = _binding(tpm2_tokens(found.get("luks")), want)
    if not bound:
        return check, False, f"/{name}: {found.get('device')}: {binding}, expected {_short(want)}"
    unit = found.get("unit") or {}
    where = f"/{name} ({found.get('device')}, {binding})"
    if found.get("mapped") and found.get("mounted") == f"/dev/mapper/{name}":
        return check, True, f"{where}: unlocked by the TPM and mounted"
    if unit.get("load") == "not-found" and not found.get("mapped"):
        return check, True, f"{where}: created and enrolled this boot; the TPM unlocks it next"
    log = "; ".join(str(x) for x in (found.get("log") or [])[-4:]) or "no log"
    return (
        check,
        False,
        (
            f"{where}: not unlocked (systemd-cryptsetup@{name}: {unit.get('active')}/"
            f"{unit.get('result')}: {log}); {_mismatch(guest, expected_pcr11)}"
        ),
    )


def sealed_checks(
    guest: dict[str, Any],
    policy_key: str | None,
    sealed: Sequence[tuple[str, str]],
    expected_pcr11: str | None = None,
) -> list[CheckTuple]:
    """``sealed``: (designator, DPS type UUID) of every volume the image seals."""
    if policy_key is None:
        return []
    checks = [policy_check(guest, policy_key)]
    volumes = {str(v.get("name")): v for v in guest.get("sealed") or [] if isinstance(v, dict)}
    for name, type_uuid in sealed:
        found = volumes.get(name)
        checks.append(volume_check(name, found, policy_key, type_uuid, guest, expected_pcr11))
    return checks
