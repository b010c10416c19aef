"""The partition layout of an image, computed from the blueprint alone (pure, no I/O).

Each ``[customizations.disk]`` partition (or older ``[[customizations.filesystem]]`` entry)
becomes one GPT partition. An empty ``part_type`` is derived from the mount point per the
Discoverable Partitions Specification (/ -> root-<arch>, /usr -> usr-<arch>, /home, /srv,
/var, /var/tmp, swap, /boot -> XBOOTLDR, /efi and /boot/efi -> ESP); any other mount point
gets linux-generic and an fstab line, the only fstab lines the composer writes.
The root partition is always last, so that it can grow into a bigger disk at first boot.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from composer import dps
from composer.arch import Arch
from composer.disk_customizations import Disk, Filesystem, Partition
from composer.layout_rules import (
    ALIGN,
    DEFAULT_SIZE,
    GPT_RESERVED,
    MIN_FS,
    MIN_ROOT,
    ORDER,
    Key,
    LayoutError,
    check_fs,
    designate,
    flags_for,
)
from composer.units import MiB, align_up, human_size

__all__ = ["Layout", "LayoutError", "PartitionPlan", "compute"]
_VERSION = re.compile(r"^[A-Za-z0-9.~^+-]+$")


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
    fstab: bool = False  # mounted through an fstab line, not discovered

    @property
    def attrs(self) -> int:
        return int(dps.flags_from_names(self.flags)) if self.flags else 0

    @property
    def read_only(self) -> bool:
        return "read-only" in self.flags or self.filesystem == "erofs"


@dataclass(frozen=True)
class Layout:
    disk_size: int
    partitions: tuple[PartitionPlan, ...]
    fstab: tuple[str, ...] = ()

    @property
    def grows(self) -> bool:
        root = next(p for p in self.partitions if p.designator == "root")
        return "grow-fs" in root.flags


@dataclass
class _Request:
    key: Key
    designator: str
    type_uuid: str
    type_name: str
    mountpoint: str
    filesystem: str
    minsize: int
    part: Partition
    fstab: bool = False
    flags: tuple[str, ...] = field(default_factory=tuple)


def _requests(
    disk: Disk | None, filesystems: tuple[Partition, ...], fs_key: bool
) -> list[tuple[Key, Partition]]:
    base: Key = ("customizations", "filesystem") if fs_key else ("customizations", "disk")
    parts = filesystems if fs_key else (disk.partitions if disk else ())
    return [((*base, i) if fs_key else (*base, "partitions", i), p) for i, p in enumerate(parts)]


def _collect(
    disk: Disk | None, fss: tuple[Partition, ...], arch: Arch, esp_size: int
) -> list[_Request]:
    if disk is not None and disk.partitions and fss:
        raise LayoutError(
            ("customizations", "filesystem"),
            "use either [customizations.disk] or [[customizations.filesystem]], not both",
        )
    pairs = _requests(disk, fss, bool(fss))
    reqs: list[_Request] = []
    seen: dict[str, Key] = {}
    for key, p in pairs:
        d, tuuid, tname, mp, fstab = designate(key, p, arch)
        fs = p.fs_type or {"esp": "vfat", "xbootldr": "vfat", "swap": "swap"}.get(d, "ext4")
        if mp != "swap" and fs == "swap":
            raise LayoutError((*key, "fs_type"), f"swap has no mount point (got {mp})")
        clash = mp if d == "linux-generic" else d
        if clash in seen:
            raise LayoutError(key, f"{mp} ({d}) is already given at {_dotted(seen[clash])}")
        seen[clash] = key
        default = esp_size if d == "esp" else DEFAULT_SIZE.get(d, max(256 * MiB, MIN_FS.get(fs, 0)))
        size = align_up(p.minsize or default, ALIGN)
        if d == "root":
            size = max(size, MIN_ROOT)
        check_fs(key, d, fs, p, size)
        flags = flags_for(key, d, fs, p)
        req = _Request(key, d, tuuid, tname, mp, fs, size, p, fstab or "no-auto" in flags, flags)
        reqs.append(req)
    if "esp" not in seen:
        t = dps.by_designator("esp")
        reqs.append(_Request((), "esp", str(t.uuid), t.name, "/efi", "vfat", esp_size, Partition()))
    if "root" not in seen:
        t = dps.by_designator("root", arch.dps)
        root = Partition(mountpoint="/")
        flags = ("grow-fs",)
        reqs.append(
            _Request((), "root", str(t.uuid), t.name, "/", "ext4", MIN_ROOT, root, False, flags)
        )
    return reqs


def _dotted(key: Key) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _gpt_label(req: _Request, name: str, version: str) -> str:
    p = req.part
    if not p.versioned_label:
        return p.part_label or req.type_name
    if req.designator not in ("root", "usr"):
        raise LayoutError((*req.key, "versioned_label"), "DPS versions only root and /usr labels")
    base = p.part_label or name
    label = f"{base}_{version}"
    if "_" in base or not _VERSION.match(version) or len(label) > 36:
        raise LayoutError(
            (*req.key, "versioned_label"),
            f"{label!r}: needs NAME_VERSION with no '_' in NAME, a version of letters, digits "
            "and .~^+- and at most 36 characters",
        )
    return label


def _fstab_line(p: PartitionPlan) -> str:
    if p.filesystem == "swap":
        return f"PARTUUID={p.uuid}\tnone\tswap\tdefaults\t0\t0"
    opts = "defaults,ro" if p.read_only else "defaults"
    passno = 2 if p.filesystem == "ext4" else 0
    return f"PARTUUID={p.uuid}\t{p.mountpoint}\t{p.filesystem}\t{opts}\t0\t{passno}"


def compute(
    *,
    disk: Disk | None,
    filesystems: tuple[Filesystem, ...],
    arch: Arch,
    seed: uuid.UUID,
    image_size: int,
    esp_size: int,
    name: str,
    version: str,
    machine_id: str | None,
) -> Layout:
    """The partitions, in disk order, with sizes, types, UUIDs, flags and fstab lines."""
    esp_size = align_up(esp_size, ALIGN)
    if esp_size < 64 * MiB:
        raise LayoutError(("image", "esp_size"), "the ESP needs at least 64 MiB")
    fss = tuple(
        Partition(
            mountpoint=f.mountpoint,
            minsize=f.minsize,
            fs_type="swap" if f.mountpoint == "swap" else None,
        )
        for f in filesystems
    )
    custom = bool(fss) or bool(disk and disk.partitions)
    reqs = _collect(disk, fss, arch, esp_size)
    root = next(r for r in reqs if r.designator == "root")
    others = sorted(
        (r for r in reqs if r is not root), key=lambda r: ORDER.get(r.designator, len(ORDER))
    )
    used = sum(r.minsize for r in others)
    need = 2 * GPT_RESERVED + used + root.minsize
    minsize = disk.minsize if disk else 0
    disk_size = align_up(max(image_size, minsize, need), ALIGN)
    if image_size < need and not custom:
        raise LayoutError(("image", "size"), f"too small: needs at least {human_size(need)}")
    root.minsize = disk_size - 2 * GPT_RESERVED - used
    parts: list[PartitionPlan] = []
    start = GPT_RESERVED
    for number, r in enumerate([*others, root], start=1):
        puuid = r.part.part_uuid or str(uuid.uuid5(seed, f"partition:{number}:{r.designator}"))
        if r.designator == "var":
            puuid = _var_uuid(r, machine_id, puuid)
        ident = r.designator if r.designator != "linux-generic" else f"generic:{r.mountpoint}"
        parts.append(
            PartitionPlan(
                number=number,
                designator=r.designator,
                type_name=r.type_name,
                type_uuid=r.type_uuid,
                uuid=puuid,
                label=_gpt_label(r, name, version),
                start=start,
                size=r.minsize,
                filesystem=r.filesystem,
                fs_uuid=str(uuid.uuid5(seed, f"fs:{ident}")),
                fs_label=r.part.label or ("ESP" if r.filesystem == "vfat" else r.designator[:12]),
                mountpoint=r.mountpoint,
                flags=r.flags,
                fstab=r.fstab,
            )
        )
        start += r.minsize
    fstab = tuple(_fstab_line(p) for p in parts if p.fstab)
    return Layout(disk_size, tuple(parts), fstab)


def _var_uuid(r: _Request, machine_id: str | None, given: str) -> str:
    if machine_id is None:
        raise LayoutError(
            r.key or ("customizations", "disk"),
            "a /var partition is mounted only when its partition UUID is the HMAC of the machine "
            "ID (DPS): fix the machine ID with [image] machine_id = '<32 hex digits>' "
            "(every machine made from the image then shares it)",
        )
    want = str(dps.var_partition_uuid(machine_id))
    if r.part.part_uuid and r.part.part_uuid != want:
        raise LayoutError(
            (*r.key, "part_uuid"),
            f"the /var partition UUID must be {want} (HMAC of machine_id); leave part_uuid empty",
        )
    return want
