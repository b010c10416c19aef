"""PCR 11 prediction against a test vector made with systemd-measure 252 (`systemd-measure
calculate --linux=… --osrel=… --cmdline=… --initrd=… --bank=sha256 --phase=…` of the files in
VECTOR), re-checked with 257 (tests/integration/test_measure_systemd.py)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from composer.measure.pcr11 import (
    BANKS,
    PHASES,
    event_digests,
    measured_sections,
    phase_words,
    predict_pcr11,
    predict_uki,
    uki_sections,
)

VECTOR = {
    ".linux": b"LINUXKERNELDATA",
    ".osrel": b'ID=test\nPRETTY_NAME="Test OS"\n',
    ".cmdline": b"console=ttyS0 rw",
    ".initrd": b"INITRDDATA",
}
EXPECTED_SHA256 = {
    "": "ed40acbe557e0e6ffb6167a706f15657754515643326dd92c5555c8f09c5c1ff",
    "enter-initrd": "1bcbbe167fb691a6f5c1f7e7b5f3e05a75fe37f8df5a5f50d295aa0942c59811",
    "enter-initrd:leave-initrd": "94a863a6db832bf399d793f2072272a412c3161d6b2e907ee9ba6f59505a4de8",
    "enter-initrd:leave-initrd:sysinit": "8a56028a7a3ae5c94683ed628144acc4f5dae9f220037c55ac6884b50c23f8da",
    "enter-initrd:leave-initrd:sysinit:ready": "3b1495378338007cf0a503e8aeff880d19c2c640cb4b329faf2f7e4ec721a50d",
}


def test_spec_notes_vector_all_phases() -> None:
    got = predict_pcr11(VECTOR)
    assert list(got) == ["sha256"]
    assert got["sha256"] == EXPECTED_SHA256
    assert tuple(got["sha256"]) == PHASES


def test_section_order_not_dict_order() -> None:
    reordered = dict(reversed(list(VECTOR.items())))
    assert predict_pcr11(reordered) == predict_pcr11(VECTOR)


@pytest.mark.parametrize(
    ("bank", "size"), [("sha1", 20), ("sha256", 32), ("sha384", 48), ("sha512", 64)]
)
def test_bank_lengths(bank: str, size: int) -> None:
    got = predict_pcr11(VECTOR, banks=(bank,))[bank]
    assert all(len(bytes.fromhex(v)) == size for v in got.values())
    assert len(set(got.values())) == len(PHASES)


def test_banks_differ_and_all_known() -> None:
    got = predict_pcr11(VECTOR, banks=BANKS)
    assert set(got) == set(BANKS)
    assert got["sha256"] == EXPECTED_SHA256
    assert got["sha1"][""] != got["sha256"][""][:40]


def test_unknown_bank_refused() -> None:
    with pytest.raises(ValueError, match="md5"):
        predict_pcr11(VECTOR, banks=("md5",))


def test_missing_and_empty_sections_skipped() -> None:
    assert predict_pcr11({**VECTOR, ".ucode": b"", ".splash": b""}) == predict_pcr11(VECTOR)
    without = {k: v for k, v in VECTOR.items() if k != ".initrd"}
    assert predict_pcr11({**without, ".initrd": b""}) == predict_pcr11(without)
    assert predict_pcr11(without)["sha256"][""] != EXPECTED_SHA256[""]


def test_pcrsig_and_foreign_sections_ignored() -> None:
    extra = {**VECTOR, ".pcrsig": b'{"sha256":[]}\0', ".text": b"stub code", ".sdmagic": b"x"}
    assert predict_pcr11(extra)["sha256"] == EXPECTED_SHA256
    assert [n for n, _ in measured_sections(extra)] == [".linux", ".osrel", ".cmdline", ".initrd"]


def test_measured_sections_follow_stub_table() -> None:
    secs = {
        ".efifw": b"f",
        ".hwids": b"h",
        ".dtbauto": b"a",
        ".profile": b"p",
        ".pcrpkey": b"k",
        ".sbat": b"s",
        ".uname": b"u",
        ".dtb": b"d",
        ".splash": b"b",
        ".ucode": b"c",
        **VECTOR,
    }
    assert [n for n, _ in measured_sections(secs)] == [
        ".linux",
        ".osrel",
        ".cmdline",
        ".initrd",
        ".ucode",
        ".splash",
        ".dtb",
        ".uname",
        ".sbat",
        ".pcrpkey",
        ".profile",
        ".dtbauto",
        ".hwids",
        ".efifw",
    ]


def test_event_digests_by_hand() -> None:
    events = event_digests({".linux": b"K"}, "sha256", "enter-initrd")
    assert [d for _, d in events] == [
        hashlib.sha256(b".linux\0").digest(),
        hashlib.sha256(b"K").digest(),
        hashlib.sha256(b"enter-initrd").digest(),
    ]
    # sha256 of ".linux\0" and of the word "enter-initrd", as systemd-measure extends them
    assert events[0][1].hex().startswith("0da293e3")
    assert events[2][1].hex() == "51e6b92f405d1f98d96e3de343d61d420ad6923b25de21d766f9298192f14fed"


def test_phase_normalisation_like_systemd_measure() -> None:
    assert phase_words("") == phase_words(":") == []
    assert phase_words(":enter-initrd::leave-initrd:") == ["enter-initrd", "leave-initrd"]
    got = predict_pcr11(VECTOR, phases=(":", "enter-initrd:"))["sha256"]
    assert got[":"] == EXPECTED_SHA256[""]
    assert got["enter-initrd:"] == EXPECTED_SHA256["enter-initrd"]


def _pe(sections: list[tuple[bytes, bytes, int]]) -> bytes:
    """A minimal PE32+ image: (name, raw data, VirtualSize) per section; raw padded to 0x200."""
    falign, salign = 0x200, 0x1000
    headers = 0x400
    table = b""
    body = b""
    rva = salign
    for name, raw, vsize in sections:
        padded = raw + bytes(-len(raw) % falign)
        table += struct.pack(
            "<8sIIIIIIHHI",
            name,
            vsize,
            rva,
            len(padded),
            headers + len(body),
            0,
            0,
            0,
            0,
            0x40000040,
        )
        body += padded
        rva += max(vsize, len(padded), 1) + (-max(vsize, len(padded), 1) % salign)
    coff = struct.pack("<HHIIIHH", 0x8664, len(sections), 0, 0, 0, 240, 0x22)
    opt = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B, 0, 0, 0, 0, 0, 0, 0, 0x140000000, salign, falign,
        0, 0, 0, 0, 0, 0, 0, rva, headers, 0, 10, 0, 0, 0, 0, 0, 0, 16,
    )  # fmt: skip
    opt += bytes(16 * 8)
    head = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40) + b"PE\0\0" + coff + opt + table
    return head + bytes(headers - len(head)) + body


def test_predict_uki_reads_virtual_size(tmp_path: Path) -> None:
    uki = tmp_path / "uki.efi"
    uki.write_bytes(
        _pe(
            [
                (b".text", b"code", 4),
                (b".linux", b"LINUXKERNELDATA", 15),  # VirtualSize < SizeOfRawData: 15 bytes
                (b".osrel", VECTOR[".osrel"], len(VECTOR[".osrel"])),
                (b".cmdline", VECTOR[".cmdline"], len(VECTOR[".cmdline"])),
                (b".initrd", b"INITRDDATA", 10),
                (b".pcrsig", b"{}", 2),
                (b".splash", b"ignored: VirtualSize 0", 0),
            ]
        )
    )
    assert uki_sections(uki)[".linux"] == b"LINUXKERNELDATA"
    assert ".splash" not in uki_sections(uki)
    assert predict_uki(uki, banks=("sha256",)) == {"sha256": EXPECTED_SHA256}


def test_predict_uki_zero_fills_past_raw_data(tmp_path: Path) -> None:
    uki = tmp_path / "uki.efi"
    uki.write_bytes(_pe([(b".linux", b"K" * 0x200, 0x1800)]))
    assert uki_sections(uki)[".linux"] == b"K" * 0x200 + bytes(0x1600)
    assert predict_uki(uki) == predict_pcr11({".linux": b"K" * 0x200 + bytes(0x1600)})


@pytest.mark.parametrize("dup", [b".profile", b".dtbauto"])
def test_predict_uki_refuses_boot_dependent(tmp_path: Path, dup: bytes) -> None:
    uki = tmp_path / "uki.efi"
    uki.write_bytes(_pe([(b".linux", b"K", 1), (dup, b"a", 1), (dup, b"b", 1)]))
    with pytest.raises(ValueError, match=dup.decode()):
        predict_uki(uki)
