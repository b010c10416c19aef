"""What a system looks like, as far as making it DPS- and UKI-ready goes (plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LOADERS = ("keep", "systemd-boot", "uki-direct", "grub2")


@dataclass(frozen=True)
class Partition:
    number: int
    node: str  # /dev/vda2 (running) or /dev/sda2 (libguestfs)
    type_uuid: str  # lower case
    uuid: str  # partition UUID, lower case
    fstype: str = ""  # vfat, ext4, xfs, btrfs, swap; "" when unknown
    fs_uuid: str = ""
    fs_label: str = ""
    part_label: str = ""


@dataclass(frozen=True)
class Facts:
    disk: str  # the disk holding /
    label: str  # partition table: gpt, dos, …
    partitions: tuple[Partition, ...]
    root: str  # device mounted at / (a partition node, or /dev/mapper/… and the like)
    arch: str  # DPS architecture token: x86-64, arm64, …
    efi_arch: str  # EFI file suffix: x64, aa64, …
    os_id: str = "linux"  # os-release ID: names a UKI copied to the ESP
    machine_id: str | None = None  # None: not yet generated (first boot pending)
    fstab: str | None = None  # /etc/fstab text; None when there is none
    # Files that may carry root= (absolute paths in the system): /etc/kernel/cmdline,
    # /etc/default/grub, BLS Type #1 entries.
    cmdline_files: Mapping[str, str] = field(default_factory=dict)
    esp_mount: str | None = None  # where the ESP is (or will be) mounted: /efi, /boot/efi, …
    # ESP files that matter (paths relative to the ESP, as found) -> sha256
    esp_files: Mapping[str, str] = field(default_factory=dict)
    # UKIs the system ships outside the ESP (/usr/lib/modules/KVER/*.efi) -> sha256
    ukis: Mapping[str, str] = field(default_factory=dict)
    sdboot_available: bool = False  # bootctl and systemd-boot<arch>.efi are installed

    def partition(self, node: str) -> Partition | None:
        return next((p for p in self.partitions if p.node == node), None)
