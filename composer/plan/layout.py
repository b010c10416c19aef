"""The partition layout of an image, computed from the blueprint alone (pure, no I/O).

Each ``[customizations.disk]`` partition (or older ``[[customizations.filesystem]]`` entry)
becomes one GPT partition. An empty ``part_type`` is derived from the mount point per the
Discoverable Partitions Specification (/ -> root-<arch>, /usr -> usr-<arch>, /home, /srv,
/var, /var/tmp, swap, /boot -> XBOOTLDR, /efi and /boot/efi -> ESP); any other mount point
gets linux-generic and an fstab line, the only fstab lines the composer writes.
The root partition is always last, so that it can grow into a bigger disk at first boot.

Where DPS cannot mount a partition, it gets an fstab line too: swap partitions when there are
several (systemd's gpt-auto generator enables one, and none once fstab names a swap), and
/var without a fixed
machine ID (its partition UUID must be the machine ID's HMAC), which is mounted the way
osbuild mounts its file systems, by file-system UUID (osbuild stages/org.osbuild.fstab).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from composer.blueprint.disk import Disk, Filesystem, Partition
from composer.blueprint.model import Blueprint
from composer.core.units import SIZE_LIMIT, MiB, align_up, human_size
from composer.plan.rules import (
    ALIGN,
    DEFAULT_SIZE,
    GPT_RESERVED,
    MIN_FS,
    MIN_ROOT,
    ORDER,
    Key,
    LayoutError,
    LayoutErrors,
    check_fs,
    designate,
    flags_for,
)
from composer.spec import dps
from composer.spec.arch import ARCHES, Arch

__all__ = [
    "Layout",
    "LayoutError",
    "LayoutErrors",
    "PartitionPlan",
    "compute",
    "layout_of",
    "seed_of",
]
# The biggest disk the composer makes: what every output format can hold (qemu's fixed VHD
# tops out at 2040 GiB, block/vpc.c VHD_MAX_SECTORS; VHDX at 64 TiB, block/vhdx.h).
FORMAT_MAX = {"vhd": 2040 * 1024**3, "vhdx": 64 * 1024**4}
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
    disk: Disk | None, fss: tuple[Partition, ...], arch: Arch, esp_size: int,
    errors: list[LayoutError],
) -> list[_Request]:  # fmt: skip
    if disk is not None and disk.partitions and fss:
        raise LayoutError(
            ("customizations", "filesystem"),
            "use either [customizations.disk] or [[customizations.filesystem]], not both",
        )
    reqs: list[_Request] = []
    seen: dict[str, Key] = {}
    uuids: dict[str, Key] = {}
    for key, p in _requests(disk, fss, bool(fss)):
        try:
            req = _request(key, p, arch, esp_size, seen)
        except LayoutError as exc:
            errors.append(exc)
            continue
        if p.part_uuid:
            if p.part_uuid in uuids:
                errors.append(LayoutError((*key, "part_uuid"), f"{p.part_uuid} is already the "
                              f"partition UUID of {_dotted(uuids[p.part_uuid])}: a GPT's "
                              "partition UUIDs are unique"))  # fmt: skip
            uuids.setdefault(p.part_uuid, key)
        reqs.append(req)
    if errors:
        raise LayoutErrors(errors)
    swaps = [r for r in reqs if r.designator == "swap"]
    if len(swaps) > 1 or any(r.fstab for r in swaps):
        # systemd-gpt-auto-generator leaves swap alone once fstab names one (gpt-auto-generator.c
        # "Disable the swap auto logic if at least one swap is defined in /etc/fstab"): all
        # swap partitions get their fstab lines
        for r in swaps:
            r.fstab = True
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


def _request(key: Key, p: Partition, arch: Arch, esp_size: int, seen: dict[str, Key]) -> _Request:
    d, tuuid, tname, mp, fstab = designate(key, p, arch)
    fs = p.fs_type or {"esp": "vfat", "xbootldr": "vfat", "swap": "swap"}.get(d, "ext4")
    if mp != "swap" and fs == "swap":
        raise LayoutError((*key, "fs_type"), f"swap has no mount point (got {mp})")
    clash = mp if d == "linux-generic" else d
    if clash in seen and d != "swap":
        raise LayoutError(key, f"{mp} ({d}) is already given at {_dotted(seen[clash])}")
    seen.setdefault(clash, key)
    default = esp_size if d == "esp" else DEFAULT_SIZE.get(d, max(256 * MiB, MIN_FS.get(fs, 0)))
    size = align_up(p.minsize or default, ALIGN)
    if d == "root":
        size = max(size, MIN_ROOT)
    check_fs(key, d, fs, p, size)
    flags = flags_for(key, d, fs, p)
    return _Request(key, d, tuuid, tname, mp, fs, size, p, fstab or "no-auto" in flags, flags)


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
    # /var not discoverable (no machine ID): by file-system UUID, as osbuild's fstab stage
    spec = f"UUID={p.fs_uuid}" if p.designator == "var" else f"PARTUUID={p.uuid}"
    return f"{spec}\t{p.mountpoint}\t{p.filesystem}\t{opts}\t0\t{passno}"


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
    size_given: bool = False,
    formats: tuple[str, ...] = (),
    reserve: int = 0,
) -> Layout:
    """The partitions, in disk order, with sizes, types, UUIDs, flags and fstab lines;
    ``reserve`` bytes left free at the end of the disk (for the partitions systemd-repart
    creates at first boot). Raises LayoutErrors naming every problem found."""
    errors: list[LayoutError] = []
    esp_size = align_up(esp_size, ALIGN)
    if esp_size < 64 * MiB:
        errors.append(LayoutError(("image", "esp_size"), "the ESP needs at least 64 MiB"))
    fss = tuple(
        Partition(
            mountpoint=f.mountpoint,
            minsize=f.minsize,
            fs_type="swap" if f.mountpoint == "swap" else None,
        )
        for f in filesystems
    )
    custom = bool(fss) or bool(disk and disk.partitions)
    try:
        reqs = _collect(disk, fss, arch, esp_size, errors)
    except LayoutError as exc:
        raise LayoutErrors([*errors, exc]) from None
    root = next(r for r in reqs if r.designator == "root")
    others = sorted(
        (r for r in reqs if r is not root), key=lambda r: ORDER.get(r.designator, len(ORDER))
    )
    first = align_up(max(GPT_RESERVED, disk.start_offset if disk else 0), ALIGN)
    reserve = align_up(reserve, ALIGN)
    used = sum(r.minsize for r in others) + reserve
    need = first + GPT_RESERVED + used + root.minsize
    minsize = disk.minsize if disk else 0
    disk_size = align_up(max(image_size, minsize, need), ALIGN)
    if image_size < need and (size_given or not custom):
        errors.append(LayoutError(("image", "size"), f"{human_size(image_size)} is too small: "
                      f"the partitions need at least {human_size(need)}"))  # fmt: skip
    errors += _disk_limits(disk_size, formats, bool(disk and disk.minsize > image_size))
    if errors:
        raise LayoutErrors(errors)
    root.minsize = disk_size - first - GPT_RESERVED - used
    try:
        parts = _place([*others, root], first, seed, name, version, machine_id)
    except LayoutError as exc:
        raise LayoutErrors([exc]) from None
    fstab_lines = tuple(_fstab_line(p) for p in parts if p.fstab)
    return Layout(disk_size, tuple(parts), fstab_lines)


def _place(
    reqs: list[_Request], first: int, seed: uuid.UUID, name: str, version: str,
    machine_id: str | None,
) -> list[PartitionPlan]:  # fmt: skip
    """The partitions in disk order from ``first`` on, with their UUIDs and labels."""
    parts: list[PartitionPlan] = []
    start = first
    idents: set[str] = set()
    for number, r in enumerate(reqs, start=1):
        puuid = r.part.part_uuid or str(uuid.uuid5(seed, f"partition:{number}:{r.designator}"))
        fstab = r.fstab
        if r.designator == "var":
            puuid, fstab = _var_uuid(r, machine_id, puuid)
        ident = r.designator if r.designator != "linux-generic" else f"generic:{r.mountpoint}"
        if ident in idents:  # a second swap partition
            ident = f"{ident}:{number}"
        idents.add(ident)
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
                fstab=fstab,
            )
        )
        start += r.minsize
    return parts


def _disk_limits(size: int, formats: tuple[str, ...], minsize: bool) -> list[LayoutError]:
    key: Key = ("customizations", "disk", "minsize") if minsize else ("image", "size")
    if size >= SIZE_LIMIT:
        return [LayoutError(key, f"the disk would be {human_size(size)}: disks must be below "
                            "2^63 bytes")]  # fmt: skip
    out = []
    for fmt in formats:
        if fmt in FORMAT_MAX and size > FORMAT_MAX[fmt]:
            out.append(LayoutError(("image", "formats"), f"{fmt} holds at most "
                       f"{human_size(FORMAT_MAX[fmt])}; the disk is {human_size(size)}"))  # fmt: skip
    return out


def _var_uuid(r: _Request, machine_id: str | None, given: str) -> tuple[str, bool]:
    """(partition UUID, needs an fstab line) of /var: DPS mounts it only when its UUID is the
    HMAC of the machine ID; without a fixed machine ID it is mounted by fstab."""
    if machine_id is None:
        return given, True
    want = str(dps.var_partition_uuid(machine_id))
    if r.part.part_uuid and r.part.part_uuid != want:
        raise LayoutError(
            (*r.key, "part_uuid"),
            f"the /var partition UUID must be {want} (HMAC of machine_id); leave part_uuid empty",
        )
    return want, r.fstab


# Namespace of every name-based UUID the composer derives (uuid5).
NAMESPACE = uuid.UUID("0b8d6a2e-0d3c-4c55-9d1e-6f8a4dbe6c11")


def seed_of(bp: Blueprint) -> uuid.UUID:
    """The seed every UUID of the image derives from: ``[image] seed`` (a UUID, or any text
    hashed into one), else the blueprint's name: the same blueprint, the same image."""
    if bp.image.seed is None:
        return uuid.uuid5(NAMESPACE, f"blueprint:{bp.name}")
    try:
        return uuid.UUID(bp.image.seed)
    except ValueError:
        return uuid.uuid5(NAMESPACE, f"seed:{bp.image.seed}")


def layout_of(bp: Blueprint, seed: uuid.UUID | None = None) -> Layout:
    """The partition layout of a blueprint (pure; raises LayoutErrors naming key paths)."""
    c = bp.customizations
    return compute(
        disk=c.disk,
        filesystems=c.filesystem,
        arch=ARCHES[bp.architecture],
        seed=seed or seed_of(bp),
        image_size=bp.image.size,
        esp_size=bp.image.esp_size,
        name=bp.name,
        version=bp.version,
        machine_id=bp.image.machine_id,
        size_given="size" in bp.image.model_fields_set,
        formats=bp.image.formats,
        reserve=len(bp.measured.sealed) * align_up(bp.measured.sealed_size, ALIGN),
    )
