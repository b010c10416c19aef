"""Architecture names as each tool spells them. One table, used everywhere."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str  # osbuild / uname spelling: x86_64, aarch64
    dps: str  # DPS / systemd-id128 token: x86-64, arm64
    debian: str  # dpkg architecture: amd64, arm64
    efi: str  # EFI file suffix: x64, aa64
    qemu: str  # qemu-system-<qemu>, firmware descriptor "architecture"
    machine: str  # default QEMU machine type


ARCHES: dict[str, Arch] = {
    "x86_64": Arch("x86_64", "x86-64", "amd64", "x64", "x86_64", "q35"),
    "aarch64": Arch("aarch64", "arm64", "arm64", "aa64", "aarch64", "virt"),
}


def get_arch(name: str) -> Arch:
    return ARCHES[name]
