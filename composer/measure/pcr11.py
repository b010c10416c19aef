"""Offline prediction of TPM PCR 11 as systemd-stub measures a UKI (and systemd-measure computes it).

The stub walks its fixed section table (systemd ``src/fundamental/uki.h``, "the canonical order in
which we measure the sections into TPM PCR 11"), and for every section that is present and
non-empty extends PCR 11 twice: with H(name + NUL) and with H(section bytes as mapped, i.e.
VirtualSize bytes, zero-filled past the raw data). ``.pcrsig`` is never measured. Userspace
(systemd-pcrphase) later extends one H(word) per boot phase word (UTF-8, no NUL). Each extend is
``PCR = H(PCR || digest)`` starting from all zeroes, per bank.

Limits: a multi-profile UKI (several ``.profile`` sections) and ``.dtbauto`` (the stub measures only
the one it selects at boot) cannot be predicted from the file alone; :func:`predict_uki` refuses
them rather than guess.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from composer.spec import pe

# systemd UnifiedSection enum order. PLEASE DO NOT REORDER (neither does systemd).
SECTION_ORDER: tuple[str, ...] = (
    ".linux",
    ".osrel",
    ".cmdline",
    ".initrd",
    ".ucode",
    ".splash",
    ".dtb",
    ".uname",
    ".sbat",
    ".pcrsig",
    ".pcrpkey",
    ".profile",
    ".dtbauto",
    ".hwids",
    ".efifw",
)
UNMEASURED: frozenset[str] = frozenset({".pcrsig"})
MEASURED_SECTIONS: tuple[str, ...] = tuple(s for s in SECTION_ORDER if s not in UNMEASURED)

BANKS: tuple[str, ...] = ("sha1", "sha256", "sha384", "sha512")

# Phase paths as systemd-measure names them; "" is the state before the initrd (systemd-measure
# prints it as "<:>" on stderr, accepts it as --phase=: and omits the "phase" key in its JSON).
PHASES: tuple[str, ...] = (
    "",
    "enter-initrd",
    "enter-initrd:leave-initrd",
    "enter-initrd:leave-initrd:sysinit",
    "enter-initrd:leave-initrd:sysinit:ready",
)


def _check_bank(bank: str) -> str:
    if bank not in BANKS:
        raise ValueError(f"unknown PCR bank {bank!r} (known: {', '.join(BANKS)})")
    return bank


def _h(bank: str, data: bytes) -> bytes:
    return hashlib.new(bank, data).digest()


def phase_words(phase: str) -> list[str]:
    """The words of a phase path; empty words are dropped (as systemd-measure normalises them)."""
    return [w for w in phase.split(":") if w]


def measured_sections(sections: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """The (name, data) pairs the stub measures, in its order: present, non-empty, not .pcrsig."""
    return [(name, sections[name]) for name in MEASURED_SECTIONS if sections.get(name)]


def event_digests(
    sections: Mapping[str, bytes], bank: str = "sha256", phase: str = ""
) -> list[tuple[str, bytes]]:
    """The PCR 11 extend digests in order, each with a description (for event-log comparison)."""
    _check_bank(bank)
    events: list[tuple[str, bytes]] = []
    for name, data in measured_sections(sections):
        events.append((f"{name} (name)", _h(bank, name.encode("ascii") + b"\0")))
        events.append((name, _h(bank, data)))
    for word in phase_words(phase):
        events.append((f"phase {word}", _h(bank, word.encode("utf-8"))))
    return events


def _extend(bank: str, pcr: bytes, digests: Iterable[bytes]) -> bytes:
    for d in digests:
        pcr = _h(bank, pcr + d)
    return pcr


def predict_pcr11(
    sections: Mapping[str, bytes],
    banks: Sequence[str] = ("sha256",),
    phases: Sequence[str] = PHASES,
) -> dict[str, dict[str, str]]:
    """Expected PCR 11 values: bank -> phase path -> lowercase hex.

    ``sections`` maps section names (".linux", …) to the bytes the stub measures; names outside
    the stub's table (".text", ".sdmagic", …), ".pcrsig" and empty sections are ignored.
    """
    result: dict[str, dict[str, str]] = {}
    for bank in banks:
        _check_bank(bank)
        size = hashlib.new(bank).digest_size
        base = _extend(
            bank,
            bytes(size),
            (d for _, d in event_digests(sections, bank)),
        )
        result[bank] = {
            phase: _extend(
                bank, base, (_h(bank, w.encode("utf-8")) for w in phase_words(phase))
            ).hex()
            for phase in phases
        }
    return result


def uki_sections(path: Path) -> dict[str, bytes]:
    """The sections of a UKI as the stub measures them (VirtualSize bytes, zero-filled).

    Raises ValueError for UKIs whose PCR 11 depends on more than the file: several sections
    with a measured name (multi-profile UKIs, several ``.dtbauto``/``.efifw``).
    """
    data = path.read_bytes()
    headers = [
        (s.Name.rstrip(b"\0").decode("ascii", "replace"), s.Misc_VirtualSize)
        for s in pe.parse(data).sections
    ]
    names = Counter(name for name, _ in headers)
    dups = sorted(n for n, c in names.items() if c > 1 and n in MEASURED_SECTIONS)
    if dups:
        raise ValueError(
            f"{path}: repeated section(s) {', '.join(dups)}: PCR 11 depends on the profile or "
            "hardware the stub selects at boot; cannot predict it offline"
        )
    if ".dtbauto" in names:
        raise ValueError(
            f"{path}: has .dtbauto; the stub measures it only if it matches the hardware"
        )
    result = pe.sections(data)
    # pe.sections() falls back to SizeOfRawData when VirtualSize is 0; the stub instead treats a
    # section with VirtualSize 0 as absent (PE_SECTION_VECTOR_IS_SET tests memory_size != 0).
    for name, vsize in headers:
        if vsize == 0:
            result.pop(name, None)
    return result


def predict_uki(
    path: Path,
    banks: Sequence[str] = ("sha256",),
    phases: Sequence[str] = PHASES,
) -> dict[str, dict[str, str]]:
    """:func:`predict_pcr11` for the UKI file at ``path``."""
    return predict_pcr11(uki_sections(path), banks, phases)
