"""Offline prediction of the firmware's PCR 7 (Secure Boot policy) and PCR 4 (boot applications).

The model is edk2's (OVMF: SecurityPkg/Library/DxeTpm2MeasureBootLib, Tcg2MeasurePeImage), as
systemd-pcrlock models it too (src/pcrlock/pcrlock.c, lock-secureboot-policy):

PCR 7: EV_EFI_VARIABLE_DRIVER_CONFIG for SecureBoot, PK, KEK (EFI global variable GUID), db and
dbx (image security database GUID), each digest H(UEFI_VARIABLE_DATA) with the variable's value
(empty when absent); then the separator; then, with Secure Boot on, one
EV_EFI_VARIABLE_AUTHORITY per distinct db entry that verified a loaded image (its
EFI_SIGNATURE_DATA: owner GUID + certificate, as variable "db").

PCR 4: EV_EFI_ACTION "Calling EFI Application from Boot Option", the separator, then one
EV_EFI_BOOT_SERVICES_APPLICATION per PE image the firmware's LoadImage() runs, each digest the
image's Authenticode hash: the boot loader, the UKI and - with systemd-stub < 258, which hands its
embedded kernel to LoadImage() too - the UKI's inner kernel.
"""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from composer.core.errors import ComposerError
from composer.image.varstore import IMAGE_SECURITY_DB, POLICY_VARIABLES, Varstore
from composer.spec import pe
from composer.spec.eventlog import (
    EV_EFI_ACTION,
    EV_EFI_BOOT_SERVICES_APPLICATION,
    EV_EFI_VARIABLE_AUTHORITY,
    EV_EFI_VARIABLE_DRIVER_CONFIG,
    EV_SEPARATOR,
    EVENT_TYPES,
    variable_event_data,
)

EFI_CERT_X509 = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072"
CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
SEPARATOR = bytes(4)
_STUB_VERSION = re.compile(rb"systemd-stub (\d+)")


@dataclass(frozen=True)
class Measurement:
    """One predicted event: what the firmware extends, and why."""

    pcr: int
    type: int
    what: str
    digests: Mapping[str, bytes]  # bank -> digest

    @property
    def type_name(self) -> str:
        return EVENT_TYPES.get(self.type, hex(self.type))

    def to_dict(self, bank: str = "sha256") -> dict[str, object]:
        return {
            "pcr": self.pcr,
            "type": self.type_name,
            "digest": self.digests[bank].hex(),
            "what": self.what,
        }


def _hashed(pcr: int, etype: int, what: str, data: bytes, banks: Sequence[str]) -> Measurement:
    return Measurement(pcr, etype, what, {b: hashlib.new(b, data).digest() for b in banks})


def signature_entries(esl: bytes) -> list[tuple[str, str, bytes]]:
    """EFI_SIGNATURE_LISTs -> (signature type GUID, owner GUID, signature data) per entry."""
    entries, pos = [], 0
    while pos + 28 <= len(esl):
        stype = str(uuid.UUID(bytes_le=esl[pos : pos + 16]))
        list_size, header_size, sig_size = struct.unpack_from("<III", esl, pos + 16)
        if list_size < 28 or sig_size < 16:
            break
        body = pos + 28 + header_size
        for off in range(body, pos + list_size - sig_size + 1, sig_size):
            owner = str(uuid.UUID(bytes_le=esl[off : off + 16]))
            entries.append((stype, owner, esl[off + 16 : off + sig_size]))
        pos += list_size
    return entries


# --- PCR 7 -------------------------------------------------------------------------------


def authority_entry(db: bytes, image: bytes) -> tuple[str, bytes] | None:
    """The db certificate entry (owner GUID, DER) that verifies ``image``'s signature, if any:
    the signer itself or an issuer of one of the certificates the signature carries."""
    from cryptography import x509

    sigs = pe.signatures(image)
    carried = {der for s in sigs for der in s.certificates}
    issuers = {i for s in sigs for i in s.issuers}
    for stype, owner, data in signature_entries(db):
        if stype != EFI_CERT_X509:
            continue
        if data in carried:
            return owner, data
        try:
            subject = x509.load_der_x509_certificate(data).subject.rfc4514_string()
        except ValueError:
            continue
        if subject in issuers:
            return owner, data
    return None


def pcr7_measurements(
    store: Varstore,
    images: Sequence[bytes] = (),
    banks: Sequence[str] = ("sha256",),
) -> list[Measurement]:
    """PCR 7 events for ``store``; ``images`` are the PEs the firmware verifies, in load order
    (only used with Secure Boot on). Raises ComposerError when an image has no db authority
    (the firmware would refuse to run it)."""
    out = []
    for name, guid in POLICY_VARIABLES:
        if name == "SecureBoot":
            value = b"\1" if store.secure_boot else b"\0"
        else:
            value = store.get(name, guid) or b""
        data = variable_event_data(guid, name, value)
        out.append(
            _hashed(7, EV_EFI_VARIABLE_DRIVER_CONFIG, f"{name} ({len(value)} bytes)", data, banks)
        )
    out.append(_hashed(7, EV_SEPARATOR, "separator", SEPARATOR, banks))
    if store.secure_boot:
        seen: set[bytes] = set()
        db = store.get("db", IMAGE_SECURITY_DB) or b""
        for i, image in enumerate(images):
            found = authority_entry(db, image)
            if found is None:
                raise ComposerError(
                    f"{store.source}: no db certificate verifies boot image #{i + 1}; "
                    "Secure Boot would refuse it"
                )
            sig_data = uuid.UUID(found[0]).bytes_le + found[1]
            if sig_data in seen:
                continue
            seen.add(sig_data)
            data = variable_event_data(IMAGE_SECURITY_DB, "db", sig_data)
            out.append(
                _hashed(7, EV_EFI_VARIABLE_AUTHORITY, f"db ({len(sig_data)} bytes)", data, banks)
            )
    return out


# --- PCR 4 -------------------------------------------------------------------------------


def stub_loads_inner_kernel(uki: bytes) -> bool:
    """systemd-stub before 258 starts the embedded kernel through LoadImage() (a PCR 4 event)."""
    sdmagic = pe.sections(uki).get(".sdmagic", b"")
    found = _STUB_VERSION.search(sdmagic)
    return found is not None and int(found.group(1)) < 258


def boot_chain(
    loader: bytes | None, uki: bytes, secure_boot: bool = False
) -> list[tuple[str, bytes]]:
    """The PE images the firmware measures (and, with Secure Boot, verifies), in order: boot
    loader (none for uki-direct), UKI, and the UKI's kernel when the stub hands it to
    LoadImage(). Under Secure Boot systemd-stub 257 installs its own security override for the
    kernel, so the firmware neither verifies nor measures it (seen on a real boot: PCR 4 then
    has no third image event, PCR 7 no authority for it)."""
    chain = [("boot loader", loader)] if loader is not None else []
    chain.append(("UKI", uki))
    if stub_loads_inner_kernel(uki) and not secure_boot:
        chain.append(("UKI .linux", pe.sections(uki)[".linux"]))
    return chain


def pcr4_measurements(
    chain: Sequence[tuple[str, bytes]], banks: Sequence[str] = ("sha256",)
) -> list[Measurement]:
    out = [
        _hashed(4, EV_EFI_ACTION, CALLING_EFI_APPLICATION.decode(), CALLING_EFI_APPLICATION, banks),
        _hashed(4, EV_SEPARATOR, "separator", SEPARATOR, banks),
    ]
    for what, image in chain:
        digests = {b: pe.authenticode_digest(image, b) for b in banks}
        out.append(Measurement(4, EV_EFI_BOOT_SERVICES_APPLICATION, what, digests))
    return out


# --- values and comparison -----------------------------------------------------------------


def pcr_value(measurements: Sequence[Measurement], bank: str = "sha256") -> str:
    pcr = bytes(hashlib.new(bank).digest_size)
    for m in measurements:
        pcr = hashlib.new(bank, pcr + m.digests[bank]).digest()
    return pcr.hex()
