"""PCR 4 / PCR 7 prediction (composer.measure_fw), Authenticode hashing and signatures (pe.py)."""

from __future__ import annotations

import hashlib
import struct
import uuid

import pefile
import pytest
from virt.peutils.pesign import pe_authenticode_hash

from composer.core.errors import ComposerError
from composer.image.varstore import EFI_GLOBAL, IMAGE_SECURITY_DB, Varstore, empty_varstore
from composer.measure.firmware import (
    EFI_CERT_X509,
    authority_entry,
    boot_chain,
    pcr4_measurements,
    pcr7_measurements,
    pcr_value,
    signature_entries,
    stub_loads_inner_kernel,
)
from composer.spec import eventlog, pe

from ..pe_fixture import build_pe, make_signer, win_certificate

# Live values from a boot of the default image (OVMF_CODE_4M.fd + empty OVMF_VARS_4M.fd on
# Debian 12, swtpm sha256), read from the firmware event log: the empty-varstore PCR 7 and the
# fixed PCR 4 events (the latter also match systemd-pcrlock's src/pcrlock/pcrlock.d/
# 350-action-efi-application.pcrlock and 500-separator.pcrlock.d files).
LIVE_PCR7_EMPTY = "65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068"
CALLING_EFI_APP = "3d6772b4f84ed47595d72a2c4c5ffd15f5bb72c7507fe26f2aaee2c69d5633ba"
SEPARATOR = "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119"
OWNER = "11111111-2222-3333-4444-555555555555"


def esl(certs: list[bytes], owner: str = OWNER) -> bytes:
    """EFI_SIGNATURE_LISTs, one X.509 certificate each."""
    out = b""
    for der in certs:
        size = 16 + len(der)
        out += uuid.UUID(EFI_CERT_X509).bytes_le + struct.pack("<III", 28 + size, 0, size)
        out += uuid.UUID(owner).bytes_le + der
    return out


def test_authenticode_matches_virt_firmware() -> None:
    plain = build_pe({".text": b"\x90" * 1000, ".data": b"abc"}, trailer=b"T" * 16)
    assert pe.authenticode_digest(plain) == pe_authenticode_hash(pefile.PE(data=plain))
    signed = build_pe(
        {".text": b"\x90" * 1000, ".data": b"abc"},
        trailer=b"T" * 16,
        cert_table=win_certificate(make_signer("x")),
        checksum=0xABCD,
    )
    # the signature and the checksum are outside the hash: signing does not change it
    assert pe.authenticode_digest(signed) == pe.authenticode_digest(plain)
    assert pe.authenticode_digest(signed, "sha1") == pe_authenticode_hash(
        pefile.PE(data=signed), "sha1"
    )
    assert pe.authenticode_digest(signed) == pe_authenticode_hash(pefile.PE(data=signed))


def test_authenticode_covers_section_data_and_trailer() -> None:
    a = build_pe({".text": b"\x90" * 1000}, trailer=b"x")
    b = build_pe({".text": b"\x90" * 999 + b"\x91"}, trailer=b"x")
    c = build_pe({".text": b"\x90" * 1000}, trailer=b"y")
    assert len({pe.authenticode_digest(d) for d in (a, b, c)}) == 3


def test_signatures_name_the_signer() -> None:
    signer = make_signer("dps-composer test db")
    data = build_pe({".text": b"\xc3"}, cert_table=win_certificate(signer))
    (sig,) = pe.signatures(data)
    assert sig.subjects == ("CN=dps-composer test db",)
    assert sig.certificates == (signer.der,)
    assert pe.signatures(build_pe({".text": b"\xc3"})) == []


def test_pcr7_of_an_empty_varstore_is_the_live_value() -> None:
    events = pcr7_measurements(empty_varstore())
    assert [e.what for e in events] == [
        "SecureBoot (1 bytes)",
        "PK (0 bytes)",
        "KEK (0 bytes)",
        "db (0 bytes)",
        "dbx (0 bytes)",
        "separator",
    ]
    assert events[-1].digests["sha256"].hex() == SEPARATOR
    assert pcr_value(events) == LIVE_PCR7_EMPTY


def test_pcr7_secure_boot_measures_each_authority_once() -> None:
    db_signer, other = make_signer("db key"), make_signer("other")
    loader = build_pe({".text": b"L"}, cert_table=win_certificate(db_signer))
    uki = build_pe({".text": b"U"}, cert_table=win_certificate(db_signer))
    db = esl([other.der, db_signer.der])
    store = Varstore(
        "test",
        {
            (EFI_GLOBAL, "PK"): esl([other.der]),
            (EFI_GLOBAL, "KEK"): esl([other.der]),
            (IMAGE_SECURITY_DB, "db"): db,
        },
    )
    assert store.secure_boot
    assert authority_entry(db, loader) == (OWNER, db_signer.der)
    events = pcr7_measurements(store, [loader, uki])
    assert [e.type_name for e in events][-2:] == ["EV_SEPARATOR", "EV_EFI_VARIABLE_AUTHORITY"]
    authority = eventlog.variable_event_data(
        IMAGE_SECURITY_DB, "db", uuid.UUID(OWNER).bytes_le + db_signer.der
    )
    assert events[-1].digests["sha256"] == hashlib.sha256(authority).digest()
    assert events[0].what == "SecureBoot (1 bytes)"
    assert pcr_value(events) != LIVE_PCR7_EMPTY


def test_pcr7_refuses_an_image_no_db_entry_verifies() -> None:
    store = Varstore(
        "vars.fd",
        {(EFI_GLOBAL, "PK"): b"pk", (IMAGE_SECURITY_DB, "db"): esl([make_signer("a").der])},
    )
    unsigned = build_pe({".text": b"U"})
    with pytest.raises(ComposerError, match="no db certificate verifies boot image #1"):
        pcr7_measurements(store, [unsigned])


def test_secure_boot_enable_off_means_secure_boot_off() -> None:
    off = Varstore(
        "v",
        {
            (EFI_GLOBAL, "PK"): b"pk",
            ("f0a30bc7-af08-4556-99c4-001009c93a44", "SecureBootEnable"): b"\0",
        },
    )
    assert not off.secure_boot
    assert not empty_varstore().secure_boot


def test_signature_entries_parse_lists() -> None:
    certs = [b"A" * 40, b"B" * 50]
    assert signature_entries(esl(certs)) == [(EFI_CERT_X509, OWNER, c) for c in certs]


def uki_with_stub(version: bytes) -> bytes:
    kernel = build_pe({".text": b"kernel code"})
    return build_pe(
        {".sdmagic": b"#### LoaderInfo: systemd-stub " + version + b" ####", ".linux": kernel}
    )


def test_pcr4_chain_for_systemd_stub_257_and_258() -> None:
    loader = build_pe({".text": b"sd-boot"})
    old, new = uki_with_stub(b"257.13-1~deb13u1"), uki_with_stub(b"258.1")
    assert stub_loads_inner_kernel(old) and not stub_loads_inner_kernel(new)
    assert [w for w, _ in boot_chain(loader, old)] == ["boot loader", "UKI", "UKI .linux"]
    assert [w for w, _ in boot_chain(None, new)] == ["UKI"]
    # Secure Boot: stub 257 starts its kernel through its own security override (live boot)
    assert [w for w, _ in boot_chain(loader, old, secure_boot=True)] == ["boot loader", "UKI"]
    events = pcr4_measurements(boot_chain(loader, old))
    assert events[0].digests["sha256"].hex() == CALLING_EFI_APP
    assert events[1].digests["sha256"].hex() == SEPARATOR
    kernel = pe.sections(old)[".linux"]
    assert events[4].digests["sha256"] == pe.authenticode_digest(kernel)
    assert events[2].digests["sha256"] == pe.authenticode_digest(loader)
