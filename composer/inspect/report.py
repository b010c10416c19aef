"""What `inspect` finds in an image: the report's data (composer/inspect/image.py fills it,
composer/inspect/discovery.py judges it, composer/inspect/view.py shows it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from composer.image.probe import FsInfo


@dataclass
class Discovery:
    ok: bool
    root: int | None  # the partition number systemd would mount as /
    problems: list[str]  # each one keeps the root from being discovered (or the image booting)
    warnings: list[str]


@dataclass
class PartitionInfo:
    number: int
    start: int
    size: int
    type_uuid: str
    type_name: str | None  # DPS name (root-x86-64, esp, …), None for types DPS does not define
    designator: str | None
    arch: str | None
    uuid: str
    label: str
    attrs: int
    flags: list[str]
    filesystem: FsInfo | None


@dataclass
class EfiBinary:
    path: str
    size: int
    kind: str  # uki | systemd-boot | grub | pe
    machine: str | None
    sections: dict[str, int]  # name -> VirtualSize
    signed_by: list[str]  # subjects of the certificates each signature carries
    cmdline: str | None = None
    pretty_name: str | None = None
    uname: str | None = None
    version: str | None = None  # .sdmagic of systemd-boot / systemd-stub
    pcr11: str | None = None  # predicted PCR 11 (sha256) once the system is up


@dataclass
class Report:
    image: str
    format: str
    disk_guid: str | None = None
    partitions: list[PartitionInfo] = field(default_factory=list)
    esp_files: list[str] = field(default_factory=list)
    efi: list[EfiBinary] = field(default_factory=list)
    os_release: dict[str, str] = field(default_factory=dict)
    fstab: list[str] = field(default_factory=list)
    cloud_init: bool | None = None
    root_read: str | None = None  # how the root file system was read, or why it was not
    discovery: Discovery | None = None

    def partition(self, designator: str) -> list[PartitionInfo]:
        return [p for p in self.partitions if p.designator == designator]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
