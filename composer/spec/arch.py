"""Architectures as each standard and tool spells them: one table, used everywhere.

- :data:`EFI_SUFFIX`: by DPS token (the Discoverable Partitions Specification's and
  systemd-id128's spelling), the suffix of the UEFI removable-media path
  ``\\EFI\\BOOT\\BOOT<SUFFIX>.EFI`` (UEFI specification 2.10, 3.5.1.1) and of systemd-boot's and
  systemd-stub's file names (``systemd-boot<suffix>.efi``, ``linux<suffix>.efi.stub``);
- :data:`PE_MACHINES`: PE/COFF machine types (``IMAGE_FILE_MACHINE_*``, Microsoft's PE format
  specification) by DPS token;
- :data:`ARCHES`: the architectures the composer builds and boots, by their uname/osbuild name,
  with the Debian, QEMU and GRUB spellings.
"""

from __future__ import annotations

from dataclasses import dataclass

EFI_SUFFIX: dict[str, str] = {
    "x86-64": "x64",
    "x86": "ia32",
    "arm64": "aa64",
    "arm": "arm",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}
PE_MACHINES: dict[int, str] = {
    0x8664: "x86-64",  # IMAGE_FILE_MACHINE_AMD64
    0xAA64: "arm64",  # IMAGE_FILE_MACHINE_ARM64
    0x14C: "x86",  # IMAGE_FILE_MACHINE_I386
    0x1C2: "arm",  # IMAGE_FILE_MACHINE_THUMB
    0x5064: "riscv64",  # IMAGE_FILE_MACHINE_RISCV64
}


def efi_suffix(dps: str) -> str:
    """The EFI file-name suffix of a DPS architecture token (itself when it has none here)."""
    return EFI_SUFFIX.get(dps, dps)


def removable_path(suffix: str) -> str:
    """The firmware's fallback boot file on the ESP: EFI/BOOT/BOOTX64.EFI for x64."""
    return f"EFI/BOOT/BOOT{suffix.upper()}.EFI"


@dataclass(frozen=True)
class Arch:
    name: str  # osbuild / uname spelling: x86_64, aarch64
    dps: str  # DPS / systemd-id128 token: x86-64, arm64
    debian: str  # dpkg architecture: amd64, arm64
    qemu: str  # qemu-system-<qemu>, firmware descriptor "architecture"
    machine: str  # default QEMU machine type
    grub: str  # GRUB's EFI platform (/usr/lib/grub/<grub>)

    @property
    def efi(self) -> str:
        """EFI file suffix: x64, aa64."""
        return EFI_SUFFIX[self.dps]


ARCHES: dict[str, Arch] = {
    "x86_64": Arch("x86_64", "x86-64", "amd64", "x86_64", "q35", "x86_64-efi"),
    "aarch64": Arch("aarch64", "arm64", "arm64", "aarch64", "virt", "arm64-efi"),
}


def get_arch(name: str) -> Arch:
    return ARCHES[name]


def by_dps(token: str) -> Arch | None:
    """The buildable architecture of a DPS token (x86-64: x86_64), None for others."""
    return next((a for a in ARCHES.values() if a.dps == token), None)
