"""Which DPS type, file system, flags and size a requested partition gets (pure rules)."""

from __future__ import annotations

import json
import uuid

from composer import DATA
from composer.blueprint.disk import Partition
from composer.core.units import MiB, human_size
from composer.spec import dps
from composer.spec.arch import Arch

ALIGN = MiB
GPT_RESERVED = MiB  # room for the primary and backup GPT at either end
MIN_ROOT = 512 * MiB
MIN_FS = {"xfs": 300 * MiB, "btrfs": 128 * MiB, "vfat": 64 * MiB, "ext4": 16 * MiB}
# Each file system's label length (bytes) and size limits, with their sources
_FS_DATA = json.loads((DATA / "filesystems.json").read_text())
LABEL_MAX: dict[str, int] = _FS_DATA["label_bytes"]
FS_MAX: dict[str, int] = _FS_DATA["max_bytes"]
_VFAT_BAD = set('*?.,;:/\\|+=<>[]"')  # dosfstools mkfs.fat refuses these in a label
DEFAULT_SIZE = {"xbootldr": 256 * MiB, "swap": 256 * MiB, "usr": 1536 * MiB}
# Where a designator may carry which file systems (vfat lacks Unix permissions).
UNIX_FS = ("ext4", "xfs", "btrfs")
ALLOWED_FS = {
    "root": UNIX_FS, "usr": (*UNIX_FS, "erofs"), "home": UNIX_FS, "srv": (*UNIX_FS, "erofs"),
    "var": UNIX_FS, "tmp": UNIX_FS, "swap": ("swap",), "esp": ("vfat",), "xbootldr": ("vfat",),
    "linux-generic": (*UNIX_FS, "erofs", "vfat"),
}  # fmt: skip
ORDER = {"esp": 0, "xbootldr": 1, "swap": 2, "usr": 3}  # then the rest in blueprint order, root

Key = tuple[str | int, ...]


class LayoutError(ValueError):
    """A layout problem at a blueprint key path (turned into a BlueprintError with a line)."""

    def __init__(self, key: Key, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class LayoutErrors(ValueError):
    """Every layout problem found, each at its key."""

    def __init__(self, errors: list[LayoutError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def designate(key: Key, p: Partition, arch: Arch) -> tuple[str, str, str, str, bool]:
    """(designator, type uuid, type name, mount point, needs fstab) of a partition."""
    fs = p.fs_type
    mp = p.mountpoint
    if mp is None and fs == "swap":
        mp = "swap"
    if mp is None:
        raise LayoutError(
            (*key, "mountpoint"), "a partition needs a mountpoint (or fs_type = 'swap')"
        )
    derived = dps.designator_for_mountpoint(mp)
    if not p.part_type:
        d = derived or "linux-generic"
        t = dps.by_designator(d, arch.dps)
        return d, str(t.uuid), t.name, discovered_at(d, mp), d == "linux-generic"
    try:
        known = dps.by_uuid(uuid.UUID(p.part_type))
        foreign = known is None
    except ValueError:  # a type name (the blueprint validated it)
        known, foreign = dps.by_name(p.part_type, arch=arch.dps), False
    if known is None or foreign:  # a GUID DPS does not define: mounted by fstab
        if mp in ("/", "swap"):
            raise LayoutError(
                (*key, "part_type"), f"{mp} must carry its DPS type; leave part_type empty"
            )
        return "linux-generic", p.part_type, "custom", mp, True
    if known.arch is not None and known.arch != arch.dps:
        raise LayoutError(
            (*key, "part_type"),
            f"{known.name} is for {known.arch}, but the image is {arch.name} "
            f"({dps.by_designator(known.designator, arch.dps).name})",
        )
    d = known.designator
    if d in ("root-verity", "usr-verity", "root-verity-sig", "usr-verity-sig", "user-home"):
        raise LayoutError((*key, "part_type"), f"{known.name} partitions are not built")
    if d == "linux-generic":
        if mp == "/":
            raise LayoutError((*key, "part_type"), "/ must be a root partition to be discovered")
        return d, str(known.uuid), known.name, mp, True
    if d != derived:
        where = dps.mountpoint_for_designator(d)
        raise LayoutError(
            (*key, "part_type"),
            f"{known.name} is discovered at {where}, not at {mp}; leave part_type empty "
            "(derived from the mount point) or use linux-generic (mounted by an fstab line)",
        )
    return d, str(known.uuid), known.name, discovered_at(d, mp), False


def discovered_at(designator: str, mp: str) -> str:
    return "/efi" if designator == "esp" else mp


def flags_for(key: Key, d: str, fs: str, p: Partition) -> tuple[str, ...]:
    flags = p.flags if p.flags is not None else (("grow-fs",) if d == "root" else ())
    if fs == "erofs" and "read-only" not in flags:
        if "grow-fs" in flags:
            raise LayoutError((*key, "flags"), "erofs is read-only: it cannot grow (drop grow-fs)")
        flags = (*flags, "read-only")
    if not flags:
        return ()
    problems = dps.check_flags(d, dps.flags_from_names(flags))
    if d == "root" and "no-auto" in flags:
        problems.append("a no-auto root partition is never discovered: the image would not boot")
    if d == "root" and "read-only" in flags:
        problems.append("a read-only root is not supported (the image writes /etc at first boot)")
    if problems:
        raise LayoutError((*key, "flags"), "; ".join(problems))
    return tuple(sorted(flags, key=("no-auto", "read-only", "grow-fs").index))


def check_fs(key: Key, d: str, fs: str, p: Partition, size: int) -> None:
    allowed = ALLOWED_FS[d]
    if fs not in allowed:
        raise LayoutError(
            (*key, "fs_type"), f"{fs} cannot hold a {d} partition; use one of: {', '.join(allowed)}"
        )
    if p.label:
        check_label(key, fs, p.label)
    if size < MIN_FS.get(fs, 0):
        raise LayoutError(
            (*key, "minsize"),
            f"{fs} needs at least {human_size(MIN_FS[fs])}, got {human_size(size)}",
        )
    if size > FS_MAX[fs]:
        raise LayoutError(
            (*key, "minsize"),
            f"{human_size(size)} is larger than {fs} can be ({human_size(FS_MAX[fs])})",
        )


def check_label(key: Key, fs: str, label: str) -> None:
    """A file-system label fits its file system (bytes, as the on-disk field counts them)."""
    size = len(label.encode())
    if fs == "erofs":
        raise LayoutError((*key, "label"), f"{label!r}: erofs file systems get no label here")
    if size > LABEL_MAX[fs]:
        raise LayoutError(
            (*key, "label"),
            f"{label!r} is {size} bytes: {fs} labels hold at most {LABEL_MAX[fs]} bytes",
        )
    if fs == "vfat" and _VFAT_BAD & set(label):
        raise LayoutError(
            (*key, "label"),
            f"{label!r}: a vfat label cannot hold any of {''.join(sorted(_VFAT_BAD))}",
        )
