"""osbuild ``[customizations.disk]`` and ``[[customizations.filesystem]]``, plus the DPS
extension keys of a partition: ``flags`` (no-auto, read-only, grow-fs) and
``versioned_label`` (GPT name ``<label>_<version>``, DPS "Partition Names")."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, field_validator

from composer import dps
from composer.units import parse_size
from composer.value_checks import control_char, no_control

Size = Annotated[int, BeforeValidator(parse_size)]
FsType = Literal["ext4", "xfs", "btrfs", "vfat", "swap", "erofs"]
DPS_FLAGS = ("no-auto", "read-only", "grow-fs")
# Where a separate partition cannot work: the system needs these on the root file system.
FORBIDDEN_MOUNTPOINTS = (
    "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/dev", "/proc", "/sys", "/run",
    "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/var/lib", "/var/lib/dpkg",
    "/efi/EFI", "/lost+found",
)  # fmt: skip
_GPT_NAME = re.compile(r'^[^"\\\x00-\x1f]{1,36}$')


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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


class Filesystem(_Model):
    """The older ``[[customizations.filesystem]]``: a mount point and its minimum size."""

    mountpoint: MountPoint
    minsize: Size = 0


Label = Annotated[str, AfterValidator(no_control)]  # a file-system label (mkfs -L/-n)


class LogicalVolume(_Model):
    name: str = ""
    minsize: Size = 0
    mountpoint: MountPoint = None
    label: Label = ""
    fs_type: str = ""


class Subvolume(_Model):
    name: str
    mountpoint: MountPoint = None


class Partition(_Model):
    type: Literal["plain", "lvm", "btrfs"] = "plain"
    minsize: Size = 0
    mountpoint: MountPoint = None
    label: Label = ""
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
        if v and not _GPT_NAME.match(v):
            raise ValueError(f"{v!r}: a GPT partition name has 1-36 characters, no quotes")
        return v


class Disk(_Model):
    type: Literal["gpt", "dos"] = "gpt"
    minsize: Size = 0
    partitions: tuple[Partition, ...] = ()

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v != "gpt":
            raise ValueError("Discoverable Partitions need a GPT disk: use type = 'gpt'")
        return v
