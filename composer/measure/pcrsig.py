"""A UKI's signed PCR policy (``.pcrsig`` + ``.pcrpkey``) checked offline.

``.pcrsig`` is the JSON ``systemd-measure sign`` writes (UAPI group UKI specification,
"PCR Signature"): per bank, entries ``{"pcrs": [11], "pkfp": <SHA-256 of the public
key>, "pol": <TPM2 policy digest>, "sig": <base64>}``. ``pol`` is the digest a TPM computes for
TPM2_PolicyPCR over the expected PCR values (TPM 2.0 Library Part 3, 23.7 PolicyPCR:
``H(0…0 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(PCR values))``), and ``sig`` is
RSASSA-PKCS1-v1_5 with SHA-256 over ``pol`` (what TPM2_PolicyAuthorize verifies with an empty
policyRef). Recomputing ``pol`` from the predicted PCR 11 of every boot phase and checking
``sig`` with ``.pcrpkey`` tells which phases the UKI carries a valid signature for: the phases
in which a secret sealed to that key unlocks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from composer.measure.pcr11 import PHASES, predict_pcr11

TPM_CC_POLICY_PCR = 0x0000017F
TPM_ALG = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
PCR_SELECT_BYTES = 3  # 24 PCRs: sizeofSelect of a PC client TPM


@dataclass(frozen=True)
class PcrSignature:
    bank: str
    pcrs: tuple[int, ...]
    fingerprint: str  # pkfp
    policy: str  # pol, hex
    signature: bytes


@dataclass(frozen=True)
class SignedPolicy:
    """What a UKI's .pcrsig proves: the public key's fingerprint and, per boot phase, whether
    a valid signature by it covers the phase's predicted PCR 11."""

    fingerprint: str
    bank: str
    signed: tuple[str, ...]  # phase paths with a valid signature
    unsigned: tuple[str, ...]  # predicted phases without one
    stray: int  # signatures that match no predicted phase or do not verify


def fingerprint_of(pem: bytes) -> str:
    """systemd's ``pkfp``: SHA-256 of what OpenSSL's i2d_PublicKey() makes of the key (systemd
    v257 openssl-util.c, pubkey_fingerprint): the PKCS#1 RSAPublicKey DER for RSA, the
    uncompressed point for EC."""
    key = serialization.load_pem_public_key(pem.rstrip(b"\0"))
    if isinstance(key, ec.EllipticCurvePublicKey):
        raw = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return hashlib.sha256(raw).hexdigest()


def policy_digest(pcr_values: Mapping[int, bytes], bank: str = "sha256") -> str:
    """The TPM2_PolicyPCR policy digest (from an empty policy) for ``pcr_values``."""
    select = bytearray(PCR_SELECT_BYTES)
    for pcr in pcr_values:
        select[pcr // 8] |= 1 << (pcr % 8)
    selection = struct.pack(">IHB", 1, TPM_ALG[bank], PCR_SELECT_BYTES) + bytes(select)
    values = hashlib.new(bank, b"".join(pcr_values[p] for p in sorted(pcr_values))).digest()
    start = bytes(hashlib.new(bank).digest_size)
    command = struct.pack(">I", TPM_CC_POLICY_PCR)
    return hashlib.new(bank, start + command + selection + values).hexdigest()


def parse_pcrsig(data: bytes) -> list[PcrSignature]:
    """The entries of a ``.pcrsig`` section (NUL-terminated JSON); ValueError if malformed."""
    try:
        doc = json.loads(data.rstrip(b"\0").decode("utf-8"))
        return [
            PcrSignature(
                bank,
                tuple(int(p) for p in entry["pcrs"]),
                str(entry["pkfp"]),
                str(entry["pol"]),
                base64.b64decode(entry["sig"], validate=True),
            )
            for bank, entries in doc.items()
            for entry in entries
        ]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f".pcrsig is not systemd-measure's signature JSON: {exc}") from None


def verifies(sig: PcrSignature, public_pem: bytes) -> bool:
    """Whether ``sig`` is a valid signature over its policy digest by ``public_pem``."""
    key = serialization.load_pem_public_key(public_pem.rstrip(b"\0"))
    digest = {"sha1": hashes.SHA1(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
    algorithm = digest.get(sig.bank, hashes.SHA256())
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig.signature, bytes.fromhex(sig.policy), padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig.signature, bytes.fromhex(sig.policy), ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_policy(
    sections: Mapping[str, bytes], bank: str = "sha256", phases: Sequence[str] = PHASES
) -> SignedPolicy | None:
    """The signed policy of a UKI given its sections (composer/measure/pcr11.py
    ``uki_sections``); None when it has no ``.pcrsig`` or no ``.pcrpkey``."""
    pcrsig, pcrpkey = sections.get(".pcrsig"), sections.get(".pcrpkey")
    if not pcrsig or not pcrpkey:
        return None
    fingerprint = fingerprint_of(pcrpkey)
    predicted = predict_pcr11(sections, banks=(bank,), phases=phases)[bank]
    by_policy = {policy_digest({11: bytes.fromhex(v)}, bank): p for p, v in predicted.items()}
    signed, stray = [], 0
    for sig in parse_pcrsig(pcrsig):
        if sig.bank != bank:
            continue
        phase = by_policy.get(sig.policy)
        ok = sig.pcrs == (11,) and sig.fingerprint == fingerprint and verifies(sig, pcrpkey)
        if phase is None or not ok:
            stray += 1
        else:
            signed.append(phase)
    unsigned = tuple(p for p in predicted if p not in signed)
    ordered = tuple(p for p in predicted if p in signed)
    return SignedPolicy(fingerprint, bank, ordered, unsigned, stray)
