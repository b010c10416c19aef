"""Small synthetic PE32+ files (and Authenticode-style signatures) for tests without EFI binaries."""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

FILE_ALIGN = 0x200
SECT_ALIGN = 0x1000
HEADERS = 0x400


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def build_pe(
    sections: dict[str, bytes],
    *,
    trailer: bytes = b"",
    cert_table: bytes = b"",
    checksum: int = 0x1234,
) -> bytes:
    """A PE32+ EFI application with the given sections (raw data padded to FileAlignment),
    optional data after the sections, and an optional attribute certificate table at the end."""
    n = len(sections)
    body = b""
    table = b""
    rva = SECT_ALIGN
    offset = HEADERS
    for name, data in sections.items():
        raw = data.ljust(_align(len(data), FILE_ALIGN), b"\0")
        table += struct.pack(
            "<8sIIIIIIHHI",
            name.encode()[:8],
            len(data),  # VirtualSize
            rva,
            len(raw),
            offset,
            0,
            0,
            0,
            0,
            0x40000040,
        )
        body += raw
        rva += _align(max(len(data), 1), SECT_ALIGN)
        offset += len(raw)
    body += trailer
    cert_offset = HEADERS + len(body) if cert_table else 0
    dirs = [(0, 0)] * 16
    dirs[4] = (cert_offset, len(cert_table))
    opt = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B,  # PE32+
        0,
        0,
        0,
        0,
        0,
        SECT_ALIGN,  # AddressOfEntryPoint
        0,
        0,  # ImageBase
        SECT_ALIGN,
        FILE_ALIGN,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        rva,  # SizeOfImage
        HEADERS,
        checksum,
        10,  # Subsystem: EFI application
        0,
        0,
        0,
        0,
        0,
        0,
        16,
    )
    opt += b"".join(struct.pack("<II", *d) for d in dirs)
    coff = struct.pack("<HHIIIHH", 0x8664, n, 0, 0, 0, len(opt), 0x22)
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80)
    head = dos.ljust(0x80, b"\0") + b"PE\0\0" + coff + opt + table
    assert len(head) <= HEADERS
    return head.ljust(HEADERS, b"\0") + body + cert_table


@dataclass(frozen=True)
class Signer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def make_signer(cn: str) -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return Signer(cert, key)


def win_certificate(signer: Signer, content: bytes = b"authenticode") -> bytes:
    """A WIN_CERTIFICATE (PKCS#7 signed data carrying the signer's certificate), 8-aligned."""
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(signer.cert, signer.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [])
    )
    entry = struct.pack("<IHH", 8 + len(der), 0x0200, 2) + der
    return entry.ljust(_align(len(entry), 8), b"\0")
