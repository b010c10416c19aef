"""osbuild ``[customizations.disk]`` and ``[[customizations.filesystem]]``, plus the DPS
extension keys of a partition: ``flags`` (no-auto, read-only, grow-fs) and
``versioned_label`` (GPT name ``<label>_<version>``, DPS "Partition Names")."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    field_validator,
)

from composer.blueprint.values import control_char
from composer.core.model import Model
from composer.core.units import parse_size
from composer.spec import dps
from composer.target.hierarchy import every_distribution_link

# bytes, or a size as written ("2 GiB", "512M"); the schema says what may be written
Size = Annotated[int, BeforeValidator(parse_size, json_schema_input_type=int | str)]
FsType = Literal["ext4", "xfs", "btrfs", "vfat", "swap", "erofs"]
DPS_FLAGS = ("no-auto", "read-only", "grow-fs")
# Where a separate partition cannot work: the system needs these on the root file system, or
# they are symbolic links into /run. osbuild's list (osbuild/images pkg/policies/policies.go,
# MountpointPolicies), plus what the composer's own layout needs (/usr/lib, ...); /var/lib/...
# is valid, as in osbuild.
FORBIDDEN_MOUNTPOINTS = (
    "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/dev", "/proc", "/sys", "/run",
    "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec",
    "/sysroot", "/efi/EFI", "/lost+found",
)  # fmt: skip
_GPT_NAME = re.compile(r'^[^"\\\x00-\x1f]{1,36}$')
SECTOR_SIZE = 512  # the GPT the composer writes (sfdisk), and what QEMU presents


def _mountpoint(v: str | None) -> str | None:
    if v is None or v in ("", "none"):
        return None
    if v == "swap":
        return v
    if not v.startswith("/") or any(p in (".", "..") for p in v.split("/")) or "//" in v:
        raise ValueError(f"{v!r} must be an absolute, normalised path (or empty for swap)")
    if re.search(r"\s", v) or control_char(v) is not None:
        raise ValueError(f"{v!r}: mount points cannot contain white space or control characters")
    v = v.rstrip("/") or "/"
    for bad in FORBIDDEN_MOUNTPOINTS:
        if v == bad or v.startswith(bad + "/"):
            raise ValueError(
                f"{v} cannot be a separate partition: it must be on the root file system"
            )
    link = every_distribution_link(v)  # the rest is judged per distribution (blueprint.py)
    if link is not None:
        raise ValueError(
            f"{v} crosses the link {link} of the image's root tree; a mount point must be a "
            "real directory: use the link's target"
        )
    return v


MountPoint = Annotated[str | None, AfterValidator(_mountpoint)]


def _flags(v: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if v is None:
        return None
    out = []
    for name in v:
        key = name.strip().lower().replace("_", "-")
        key = {"growfs": "grow-fs", "grow-file-system": "grow-fs", "readonly": "read-only",
               "noauto": "no-auto"}.get(key, key)  # fmt: skip
        if key not in DPS_FLAGS:
            raise ValueError(f"unknown DPS partition flag {name!r}; valid: {', '.join(DPS_FLAGS)}")
        out.append(key)
    return tuple(dict.fromkeys(out))


Flags = Annotated[tuple[str, ...] | None, AfterValidator(_flags)]


def _part_type(v: str) -> str:
    if not v:
        return ""
    try:
        dps.by_uuid(v)
        return str(UUID(v.strip())).lower()
    except ValueError:
        pass
    try:
        return dps.by_name(v).name
    except dps.UnknownPartitionType as err:
        raise ValueError(f"{err}; or give a GPT type GUID") from None


def _uuid(v: str) -> str:
    if not v:
        return ""
    try:
        return str(UUID(v.strip())).lower()
    except ValueError:
        raise ValueError(f"{v!r} is not a UUID") from None


def _fs_label(v: str) -> str:
    if any(not ch.isprintable() for ch in v):
        raise ValueError(
            f"{v!r}: a file-system label cannot hold control characters or line breaks "
            "(fstab and /dev/disk/by-label names could not carry them)"
        )
    if v.strip() != v or "/" in v:
        raise ValueError(f"{v!r}: a file-system label has no leading/trailing space and no '/'")
    return v


FsLabel = Annotated[str, AfterValidator(_fs_label)]


class Filesystem(Model):
    """The older ``[[customizations.filesystem]]``: a mount point and its minimum size
    (``size`` is its deprecated spelling, osbuild/blueprint
    pkg/blueprint/filesystem_customizations.go)."""

    mountpoint: MountPoint
    minsize: Size = Field(default=0, validation_alias=AliasChoices("minsize", "size"))


class LogicalVolume(Model):
    name: str = ""
    minsize: Size = 0
    mountpoint: MountPoint = None
    label: FsLabel = ""
    fs_type: str = ""


class Subvolume(Model):
    name: str
    mountpoint: MountPoint = None


class Partition(Model):
    """A ``[[customizations.disk.partitions]]`` entry. osbuild requires ``fs_type`` and
    ``minsize`` of a plain partition (osbuild/blueprint pkg/blueprint/disk_customizations.go,
    validatePlain); the composer fills them in: the file system the DPS type needs or ext4,
    and the sizes of composer/plan/rules.py (DEFAULT_SIZE)."""

    type: Literal["plain", "lvm", "btrfs"] = "plain"
    minsize: Size = 0
    mountpoint: MountPoint = None
    label: FsLabel = ""
    fs_type: FsType | None = None
    part_type: Annotated[str, AfterValidator(_part_type)] = ""
    part_label: str = ""
    part_uuid: Annotated[str, AfterValidator(_uuid)] = ""
    # lvm / btrfs sub-structures: recognised, rejected in the type check below
    name: str = ""
    logical_volumes: tuple[LogicalVolume, ...] = ()
    subvolumes: tuple[Subvolume, ...] = ()
    # DPS extensions (not osbuild keys)
    flags: Flags = None
    versioned_label: bool = False

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v == "lvm":
            raise ValueError(
                "LVM volume groups are not supported: DPS discovers partitions, not logical "
                "volumes; use type = 'plain'"
            )
        if v == "btrfs":
            raise ValueError(
                "btrfs subvolume layouts are not supported: a subvolume is not a DPS partition; "
                "use type = 'plain' with fs_type = 'btrfs'"
            )
        return v

    @field_validator("part_label")
    @classmethod
    def _part_label(cls, v: str) -> str:
        # 36 UTF-16 code units (osbuild/blueprint pkg/blueprint/disk_customizations.go)
        if v and (not _GPT_NAME.match(v) or len(v.encode("utf-16-le")) > 72):
            raise ValueError(
                f"{v!r}: a GPT partition name has 1-36 UTF-16 characters, no quotes, no "
                "control characters"
            )
        return v


class Disk(Model):
    type: Literal["gpt", "dos"] = "gpt"
    minsize: Size = 0
    partitions: tuple[Partition, ...] = ()
    start_offset: Size = 0  # where the first partition may start (rounded up to 1 MiB)
    sector_size: int = SECTOR_SIZE

    @field_validator("sector_size")
    @classmethod
    def _sector_size(cls, v: int) -> int:
        if v != SECTOR_SIZE:
            raise ValueError(
                f"{v}: the composer writes GPT disks with {SECTOR_SIZE}-byte sectors (sfdisk, "
                f"and QEMU presents {SECTOR_SIZE}-byte sectors); leave sector_size out"
            )
        return v

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v != "gpt":
            raise ValueError("Discoverable Partitions need a GPT disk: use type = 'gpt'")
        return v
