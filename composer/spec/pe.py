"""Read the sections of PE binaries (UKIs, boot loaders) with pefile."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pefile


def parse(data: bytes) -> pefile.PE:
    """The PE headers of ``data`` (in memory: nothing to close; pefile's ``close()`` would
    only run a full garbage collection, about 30 ms each time)."""
    return pefile.PE(data=data, fast_load=True)


def sections(data: bytes) -> dict[str, bytes]:
    """Section name -> the bytes the loader maps (VirtualSize, zero-padded past raw data)."""
    pe = parse(data)
    result: dict[str, bytes] = {}
    for s in pe.sections:
        name = s.Name.rstrip(b"\0").decode("ascii", errors="replace")
        raw = s.get_data()[: s.SizeOfRawData]
        size = s.Misc_VirtualSize or s.SizeOfRawData
        body = raw[:size]
        result[name] = body + b"\0" * (size - len(body))
    return result


def file_sections(path: Path) -> dict[str, bytes]:
    return sections(path.read_bytes())


# --- Authenticode ----------------------------------------------------------------------------

_SECURITY_DIR = 4  # IMAGE_DIRECTORY_ENTRY_SECURITY
_PE32, _PE32_PLUS = 0x10B, 0x20B


def authenticode_digest(data: bytes, bank: str = "sha256") -> bytes:
    """The PE/COFF Authenticode image hash, as edk2 measures a loaded image into PCR 4.

    Headers without the CheckSum field and the certificate-table directory entry, then every
    section's raw data in file order, then whatever follows up to the attribute certificates.
    No padding to a multiple of 8 (edk2's Tcg2MeasurePeImage adds none; signing tools pad the
    file itself before they sign it).
    """
    pe = parse(data)
    opt = pe.OPTIONAL_HEADER
    if opt.Magic not in (_PE32, _PE32_PLUS):
        raise ValueError(f"unknown optional header magic 0x{opt.Magic:x}")
    opt_offset = pe.DOS_HEADER.e_lfanew + 4 + 20  # "PE\0\0" + COFF file header
    checksum = opt_offset + 64
    dirs = opt_offset + (96 if opt.Magic == _PE32 else 112)
    headers_end = opt.SizeOfHeaders
    h = hashlib.new(bank)
    h.update(data[:checksum])
    cert_size = 0
    if opt.NumberOfRvaAndSizes > _SECURITY_DIR:
        entry = dirs + 8 * _SECURITY_DIR
        h.update(data[checksum + 4 : entry])
        h.update(data[entry + 8 : headers_end])
        cert_size = struct.unpack_from("<I", data, entry + 4)[0]
    else:
        h.update(data[checksum + 4 : headers_end])
    hashed = headers_end
    for s in sorted(pe.sections, key=lambda s: s.PointerToRawData):
        if s.SizeOfRawData:
            h.update(data[s.PointerToRawData : s.PointerToRawData + s.SizeOfRawData])
            hashed += s.SizeOfRawData
    if len(data) > hashed + cert_size:
        h.update(data[hashed : len(data) - cert_size])
    return h.digest()


@dataclass(frozen=True)
class Signature:
    """One Authenticode signature (a WIN_CERTIFICATE of type PKCS#7 signed data)."""

    subjects: tuple[str, ...]  # every certificate the PKCS#7 carries, signer first if known
    issuers: tuple[str, ...]
    certificates: tuple[bytes, ...]  # DER


def signatures(data: bytes) -> list[Signature]:
    """The Authenticode signatures in the certificate table (empty list: unsigned)."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    opt = parse(data).OPTIONAL_HEADER
    if opt.NumberOfRvaAndSizes <= _SECURITY_DIR:
        return []
    entry = opt.DATA_DIRECTORY[_SECURITY_DIR]
    start, size = entry.VirtualAddress, entry.Size  # a file offset for this directory
    result: list[Signature] = []
    pos, end = start, min(start + size, len(data))
    while size and pos + 8 <= end:
        length, _revision, ctype = struct.unpack_from("<IHH", data, pos)
        if length < 8:
            break
        if ctype == 2:  # WIN_CERT_TYPE_PKCS_SIGNED_DATA
            try:
                certs = pkcs7.load_der_pkcs7_certificates(data[pos + 8 : pos + length])
            except ValueError:
                certs = []
            result.append(
                Signature(
                    tuple(c.subject.rfc4514_string() for c in certs),
                    tuple(c.issuer.rfc4514_string() for c in certs),
                    tuple(c.public_bytes(_der()) for c in certs),
                )
            )
        pos += (length + 7) & ~7
    return result


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER
