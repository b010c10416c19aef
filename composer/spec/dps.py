"""Discoverable Partitions Specification (UAPI.2): GPT type UUIDs, attribute flags, /var rule.

Everything here is transcribed from the specification (the table
"Defined Partition Type UUIDs" at uapi-group/specifications@ed66b52d, identical to the
``SD_GPT_*`` macros in systemd's sd-gpt.h and to ``systemd-id128 show`` of systemd 252).

Names follow systemd-id128/systemd-repart: ``root-<arch>``, ``usr-<arch>``,
``root-<arch>-verity``, ``usr-<arch>-verity``, ``root-<arch>-verity-sig``,
``usr-<arch>-verity-sig`` and the generic ``esp``, ``xbootldr``, ``swap``, ``home``, ``srv``,
``var``, ``tmp``, ``user-home``, ``linux-generic``. :attr:`PartitionType.name` is always the
canonical spelling (older systemd, e.g. 252, knows no aliases), so pass that or the UUID to tools.
UUIDs are in canonical text order; GPT writers need ``uuid.bytes_le`` for the on-disk field.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntFlag
from typing import Final
from uuid import UUID

from composer.core.errors import ComposerError
from composer.spec.dps_table import (
    ARCH_DESIGNATOR_TEXT,
    ARCH_DESIGNATORS,
    ARCH_TABLE,
    DESIGNATORS,
    GENERIC_DESIGNATORS,
    GENERIC_TABLE,
    MORE_ARCH_ALIASES,
    MOUNTPOINTS,
    SYSTEMD_ARCH_ALIASES,
)

ARCHITECTURES: Final[tuple[str, ...]] = tuple(row[0] for row in ARCH_TABLE)
_ARCH_ALIASES: Final[Mapping[str, str]] = {
    **{a: a for a in ARCHITECTURES},
    **SYSTEMD_ARCH_ALIASES,
    **MORE_ARCH_ALIASES,
}


class UnknownPartitionType(KeyError, ComposerError):
    """Unknown partition type name, designator or architecture; suggests close valid names."""

    def __init__(
        self, what: str, value: str, valid: Iterable[str], listing: Iterable[str] = ()
    ) -> None:
        self.what = what
        self.value = value
        self.suggestions = difflib.get_close_matches(value.strip().lower(), list(valid), n=5)
        msg = f"unknown {what} {value!r}"
        if self.suggestions:
            msg += f"; did you mean: {', '.join(self.suggestions)}?"
        elif listing:
            msg += f"; valid: {', '.join(listing)}"
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class UnknownGptFlag(ValueError, ComposerError):
    """Unknown GPT attribute flag name."""


@dataclass(frozen=True)
class PartitionType:
    name: str  # systemd-id128/repart name: "root-x86-64", "usr-arm64-verity-sig", "esp"
    designator: str  # "root", "usr", "root-verity", …, "esp", "var", "tmp", …
    arch: str | None  # DPS architecture token, None for generic types
    uuid: UUID
    description: str


def _type_name(designator: str, arch: str) -> str:
    """("root-verity", "x86-64") -> "root-x86-64-verity"."""
    base, _, rest = designator.partition("-")
    return f"{base}-{arch}-{rest}" if rest else f"{base}-{arch}"


def _build() -> tuple[PartitionType, ...]:
    out: list[PartitionType] = []
    for arch, wording, uuids in ARCH_TABLE:
        for d, text in zip(ARCH_DESIGNATORS, uuids, strict=True):
            desc = f"{ARCH_DESIGNATOR_TEXT[d]} ({wording})"
            out.append(PartitionType(_type_name(d, arch), d, arch, UUID(text), desc))
    for name, wording, text in GENERIC_TABLE:
        out.append(PartitionType(name, name, None, UUID(text), wording))
    return tuple(out)


_TYPES: Final[tuple[PartitionType, ...]] = _build()
_BY_UUID: Final[Mapping[UUID, PartitionType]] = {t.uuid: t for t in _TYPES}
_BY_DESIGNATOR: Final[Mapping[tuple[str, str | None], PartitionType]] = {
    (t.designator, t.arch): t for t in _TYPES
}
_BY_NAME: Final[Mapping[str, PartitionType]] = {
    **{t.name: t for t in _TYPES},
    **{
        _type_name(d, alias): _BY_DESIGNATOR[(d, arch)]
        for alias, arch in SYSTEMD_ARCH_ALIASES.items()
        for d in ARCH_DESIGNATORS
    },
}
VAR_TYPE_UUID: Final[UUID] = _BY_DESIGNATOR[("var", None)].uuid


def all_types() -> tuple[PartitionType, ...]:
    """All 135 types: 21 architectures x 6 designators, then the 9 generic types."""
    return _TYPES


def resolve_arch(arch: str) -> str:
    """DPS token for a DPS token, systemd alias, uname/osbuild or Debian arch name."""
    token = _ARCH_ALIASES.get(arch.strip().lower())
    if token is None:
        raise UnknownPartitionType("architecture", arch, _ARCH_ALIASES, ARCHITECTURES)
    return token


def native_arch(machine: str | None = None) -> str:
    """DPS token of this machine (or of a given platform.machine() / `uname -m` string)."""
    m = (machine if machine is not None else platform.machine()).strip().lower()
    if machine is None and m in ("mips", "mips64") and sys.byteorder == "little":
        m += "el"  # uname -m does not tell MIPS endianness apart
    return resolve_arch(m)


def _designator(designator: str) -> str:
    d = designator.strip().lower()
    if d not in DESIGNATORS:
        raise UnknownPartitionType("partition designator", designator, DESIGNATORS, DESIGNATORS)
    return d


def by_designator(designator: str, arch: str | None = None) -> PartitionType:
    """Type for a designator. arch (any spelling resolve_arch() takes; default: native) picks
    root/usr/…-verity/…-verity-sig and is ignored for the generic designators."""
    d = _designator(designator)
    if d in GENERIC_DESIGNATORS:
        return _BY_DESIGNATOR[(d, None)]
    return _BY_DESIGNATOR[(d, resolve_arch(arch) if arch is not None else native_arch())]


def by_name(name: str, *, arch: str | None = None) -> PartitionType:
    """Type for a systemd-id128/repart name, case-insensitive, with systemd's arch aliases
    (root-x86_64, root-amd64, usr-aarch64-verity, …). A bare "root", "usr-verity", … means
    `arch`, as in systemd: by default the native one."""
    key = name.strip().lower()
    found = _BY_NAME.get(key)
    if found is not None:
        return found
    if key in ARCH_DESIGNATORS:
        return by_designator(key, arch)
    valid = [*(t.name for t in _TYPES), *ARCH_DESIGNATORS]  # suggest canonical spellings
    raise UnknownPartitionType("partition type name", name, valid)


def by_uuid(value: UUID | str) -> PartitionType | None:
    """Type for a type UUID (any text form UUID() takes); None if DPS does not define it.
    Raises ValueError for a string that is not a UUID at all."""
    return _BY_UUID.get(value if isinstance(value, UUID) else UUID(value.strip()))


# --- mount points ----------------------------------------------------------------------------

_DESIGNATOR_BY_MOUNTPOINT: Final[Mapping[str, str]] = {
    **{mp: d for d, mp in MOUNTPOINTS.items()},
    "/boot/efi": "esp",
}


def designator_for_mountpoint(mountpoint: str) -> str | None:
    """DPS designator a mount point is auto-discovered for ("/var/tmp" -> "tmp"), else None."""
    mp = mountpoint.strip()
    if mp.lower() == "swap":
        return "swap"
    if mp.startswith("/"):
        mp = "/" + "/".join(part for part in mp.split("/") if part and part != ".")
    return _DESIGNATOR_BY_MOUNTPOINT.get(mp)


def mountpoint_for_designator(designator: str) -> str | None:
    """Reverse of designator_for_mountpoint() ("esp" -> "/efi"); None for the verity and
    signature designators, user-home and linux-generic."""
    return MOUNTPOINTS.get(_designator(designator))


# --- attribute flags -------------------------------------------------------------------------


class GptFlag(IntFlag):
    REQUIRED_PARTITION = 1 << 0  # UEFI
    NO_BLOCK_IO_PROTOCOL = 1 << 1  # UEFI
    LEGACY_BIOS_BOOTABLE = 1 << 2  # UEFI
    GROWFS = 1 << 59  # DPS grow-file-system
    READ_ONLY = 1 << 60  # DPS
    NO_AUTO = 1 << 63  # DPS


FLAG_NAMES: Final[Mapping[GptFlag, str]] = {
    GptFlag.REQUIRED_PARTITION: "required-partition",
    GptFlag.NO_BLOCK_IO_PROTOCOL: "no-block-io-protocol",
    GptFlag.LEGACY_BIOS_BOOTABLE: "legacy-bios-bootable",
    GptFlag.GROWFS: "grow-fs",
    GptFlag.READ_ONLY: "read-only",
    GptFlag.NO_AUTO: "no-auto",
}
_FLAG_BY_NAME: Final[Mapping[str, GptFlag]] = {
    **{n: f for f, n in FLAG_NAMES.items()},
    "required": GptFlag.REQUIRED_PARTITION,
    "growfs": GptFlag.GROWFS,
    "grow-file-system": GptFlag.GROWFS,
    "readonly": GptFlag.READ_ONLY,
    "noauto": GptFlag.NO_AUTO,
}
# The designators DPS gives each of its flags a meaning for (the specification's "Partition
# Attribute Flags": no-auto, read-only and grow-file-system, each for the types it names).
_DATA = frozenset({"root", "usr", "home", "srv", "var", "tmp", "xbootldr"})
FLAG_APPLIES_TO: Final[Mapping[GptFlag, frozenset[str]]] = {
    GptFlag.NO_AUTO: _DATA | set(ARCH_DESIGNATORS) | {"swap"},
    GptFlag.READ_ONLY: _DATA | set(ARCH_DESIGNATORS),
    GptFlag.GROWFS: _DATA,
}


def _bits(value: int) -> list[int]:
    if not 0 <= value < 1 << 64:
        raise ValueError(f"GPT attributes must fit in 64 unsigned bits, got {value:#x}")
    return [b for b in range(64) if value >> b & 1]


def flags_from_names(names: Iterable[str]) -> GptFlag:
    """["no-auto", "read-only", "grow-fs"] -> GptFlag. One string may hold several names split
    by commas or blanks. Case and "_" vs "-" do not matter; "bit-N" sets bit N."""
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    value = GptFlag(0)
    for raw in names:
        key = raw.strip().lower().replace("_", "-")
        flag = _FLAG_BY_NAME.get(key)
        if flag is None and key.startswith("bit-") and key[4:].isdigit() and int(key[4:]) < 64:
            flag = GptFlag(1 << int(key[4:]))
        if flag is None:
            close = difflib.get_close_matches(key, list(_FLAG_BY_NAME), n=3)
            hint = f"did you mean: {', '.join(close)}?" if close else "valid: "
            hint += "" if close else ", ".join([*FLAG_NAMES.values(), "bit-0 … bit-63"])
            raise UnknownGptFlag(f"unknown GPT attribute flag {raw!r}; {hint}")
        value |= flag
    return value


def flag_names(value: int) -> list[str]:
    """Names of the bits set in value, lowest bit first; bits without a name as "bit-N"."""
    return [FLAG_NAMES.get(GptFlag(1 << b), f"bit-{b}") for b in _bits(int(value))]


def check_flags(designator: str, flags: int) -> list[str]:
    """Human-readable problems with these attribute flags on a partition of this designator
    (empty list: fine). Does not judge the UEFI bits 0-2, which any partition may carry."""
    d = _designator(designator)
    value = int(flags)
    bits = _bits(value)
    problems: list[str] = []
    for flag, applies in FLAG_APPLIES_TO.items():
        if value & flag and d not in applies:
            problems.append(
                f"{FLAG_NAMES[flag]} (bit {flag.bit_length() - 1}) has no meaning for {d} "
                f"partitions; DPS defines it for: {', '.join(sorted(applies))}"
            )
    if value & GptFlag.GROWFS and value & GptFlag.READ_ONLY and d in _DATA:
        problems.append("grow-fs has no effect on a partition that is also read-only")
    reserved = [str(b) for b in bits if 3 <= b < 48]
    if reserved:
        problems.append(f"bit(s) {', '.join(reserved)} are reserved by UEFI and must be zero")
    undefined = [str(b) for b in bits if b >= 48 and b not in (59, 60, 63)]
    if undefined:
        problems.append(f"type-specific bit(s) {', '.join(undefined)} are not defined by DPS")
    return problems


# --- /var partition UUID ---------------------------------------------------------------------


def _id128(value: str | UUID, what: str) -> UUID:
    if isinstance(value, UUID):
        u = value
    else:
        try:
            u = UUID(value.strip())
        except ValueError:
            raise ValueError(f"{what} {value!r} is not a 128-bit ID (32 hex digits)") from None
    if u.int == 0:
        raise ValueError(f"{what} must not be all zeros")
    return u


def app_specific_uuid(machine_id: str | UUID, app_id: str | UUID) -> UUID:
    """sd_id128_get_app_specific(): HMAC-SHA256(key=16 machine-id bytes, data=16 app-id bytes),
    first 16 bytes, forced to a version-4 / RFC-4122-variant UUID."""
    key = _id128(machine_id, "machine id").bytes
    data = _id128(app_id, "application id").bytes
    b = bytearray(hmac.new(key, data, hashlib.sha256).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return UUID(bytes=bytes(b))


def var_partition_uuid(machine_id: str | UUID) -> UUID:
    """Partition UUID a /var partition must carry to be auto-mounted on this machine id
    (same as `systemd-id128 machine-id --app-specific=4d21b016b53445c2a9fb5c16e091fd2d -u`)."""
    return app_specific_uuid(machine_id, VAR_TYPE_UUID)
