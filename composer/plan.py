"""Blueprint -> Plan: a pure, deterministic description of the image to build.

No I/O here. Everything random in an image (disk GUID, partition UUIDs, file-system UUIDs,
hash seeds) is derived from one seed, so the same blueprint always gives the same plan.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

from composer import dps
from composer.arch import Arch, get_arch
from composer.blueprint import Blueprint, Customizations
from composer.distros import Distro, get_distro
from composer.errors import BlueprintError
from composer.units import MiB, align_up, human_size

# Namespace of every name-based UUID the composer derives (uuid5).
NAMESPACE = uuid.UUID("0b8d6a2e-0d3c-4c55-9d1e-6f8a4dbe6c11")
ALIGN = MiB
GPT_RESERVED = MiB  # room for the primary and backup GPT at either end
MIN_ROOT = 512 * MiB


@dataclass(frozen=True)
class PartitionPlan:
    number: int
    designator: str
    type_name: str
    type_uuid: str
    uuid: str
    label: str
    start: int  # bytes from the start of the disk
    size: int  # bytes
    filesystem: str
    fs_uuid: str
    fs_label: str
    mountpoint: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    version: str
    description: str
    architecture: str
    distro: str
    suite: str
    mirror: str
    os_id: str
    seed: str
    disk_size: int
    disk_guid: str
    partitions: tuple[PartitionPlan, ...]
    packages: tuple[str, ...]
    customizations: Customizations
    loader: str
    loader_timeout: int
    cmdline: str
    formats: tuple[str, ...]
    validate_timeout: float
    validate_tpm: bool

    @property
    def arch(self) -> Arch:
        return get_arch(self.architecture)

    @property
    def distribution(self) -> Distro:
        return get_distro(self.distro)

    def partition(self, designator: str) -> PartitionPlan:
        return next(p for p in self.partitions if p.designator == designator)

    @property
    def root_type_uuid(self) -> str:
        return self.partition("root").type_uuid

    def derive(self, purpose: str) -> uuid.UUID:
        """A UUID for ``purpose``, fixed by the plan's seed."""
        return derive_uuid(uuid.UUID(self.seed), purpose)

    def output_name(self, fmt: str) -> str:
        return f"{self.name}.{fmt}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["customizations"] = self.customizations.model_dump(mode="json")
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def derive_uuid(seed: uuid.UUID, purpose: str) -> uuid.UUID:
    return uuid.uuid5(seed, purpose)


def _seed(bp: Blueprint) -> uuid.UUID:
    if bp.image.seed is None:
        return uuid.uuid5(NAMESPACE, f"blueprint:{bp.name}")
    try:
        return uuid.UUID(bp.image.seed)
    except ValueError:
        return uuid.uuid5(NAMESPACE, f"seed:{bp.image.seed}")


def _partition(
    seed: uuid.UUID,
    number: int,
    designator: str,
    arch: Arch,
    start: int,
    size: int,
    filesystem: str,
    mountpoint: str,
) -> PartitionPlan:
    ptype = dps.by_designator(designator, arch.dps)
    fs_uuid = derive_uuid(seed, f"fs:{designator}")
    fs_label = "ESP" if filesystem == "vfat" else designator[:16]
    return PartitionPlan(
        number=number,
        designator=designator,
        type_name=ptype.name,
        type_uuid=str(ptype.uuid),
        uuid=str(derive_uuid(seed, f"partition:{number}:{designator}")),
        label=ptype.name,
        start=start,
        size=size,
        filesystem=filesystem,
        fs_uuid=str(fs_uuid),
        fs_label=fs_label,
        mountpoint=mountpoint,
    )


def make_plan(bp: Blueprint, file: str = "<blueprint>") -> Plan:
    arch = get_arch(bp.architecture)
    distro = get_distro(bp.distro)
    seed = _seed(bp)
    disk_size = align_up(bp.image.size, ALIGN)
    esp_size = align_up(bp.image.esp_size, ALIGN)
    if esp_size < 64 * MiB:
        raise BlueprintError(file, None, "image.esp_size", "the ESP needs at least 64 MiB")
    root_start = GPT_RESERVED + esp_size
    root_size = disk_size - root_start - GPT_RESERVED
    if root_size < MIN_ROOT:
        need = human_size(root_start + MIN_ROOT + GPT_RESERVED)
        raise BlueprintError(file, None, "image.size", f"too small: needs at least {need}")
    partitions = (
        _partition(seed, 1, "esp", arch, GPT_RESERVED, esp_size, "vfat", "/efi"),
        _partition(seed, 2, "root", arch, root_start, root_size, "ext4", "/"),
    )
    packages = tuple(dict.fromkeys([*distro.base_packages(arch), *(p.name for p in bp.packages)]))
    cmdline = " ".join(f"{bp.boot.cmdline} {bp.customizations.kernel.append}".split())
    return Plan(
        name=bp.name,
        version=bp.version,
        description=bp.description,
        architecture=arch.name,
        distro=distro.id,
        suite=distro.suite,
        mirror=distro.mirror,
        os_id=distro.os_id,
        seed=str(seed),
        disk_size=disk_size,
        disk_guid=str(derive_uuid(seed, "disk")),
        partitions=partitions,
        packages=packages,
        customizations=bp.customizations,
        loader=bp.boot.loader,
        loader_timeout=bp.boot.timeout,
        cmdline=cmdline,
        formats=bp.image.formats,
        validate_timeout=bp.validate_.timeout,
        validate_tpm=bp.validate_.tpm,
    )
