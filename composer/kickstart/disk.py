"""The layout as kickstart `part` lines, and in %post what `part` cannot say: GPT names
(part_label, versioned_label), partition UUIDs, DPS attribute flags and non-DPS type GUIDs,
set with sfdisk on the partition that is mounted where the blueprint says (a swap partition:
found by its label). DPS types themselves are set afterwards by dps-fixup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from composer.blueprint.disk import Partition
from composer.blueprint.model import Blueprint
from composer.core.errors import Problem
from composer.core.units import MiB
from composer.kickstart.post import sh
from composer.plan.layout import Layout, LayoutErrors, PartitionPlan, layout_of


@dataclass(frozen=True)
class Part:
    plan: PartitionPlan
    source: Partition | None  # the blueprint's entry (None: the composer added it)
    key: str

    @property
    def label(self) -> str | None:
        """The file-system label for `part --label`: the blueprint's; a swap partition that
        needs GPT edits gets one to be found by in %post."""
        if self.source is not None and self.source.label:
            return self.source.label
        if self.plan.filesystem == "swap" and edits(self):
            return f"swap{self.plan.number}"
        return None


def layout(bp: Blueprint) -> tuple[Layout, list[Part]]:
    try:
        lay = layout_of(bp)
    except LayoutErrors as exc:
        raise bp.error(
            [Problem(".".join(map(str, e.key)), e.message) for e in exc.errors]
        ) from None
    c = bp.customizations
    if c.disk and c.disk.partitions:
        entries = [
            (f"customizations.disk.partitions[{i}]", p) for i, p in enumerate(c.disk.partitions)
        ]
    else:
        entries = [(f"customizations.filesystem[{i}]",
                    Partition(mountpoint=f.mountpoint, minsize=f.minsize)) for i, f in enumerate(c.filesystem)]  # fmt: skip
    parts = []
    unused = list(entries)
    for p in lay.partitions:
        match = next(((k, e) for k, e in unused if _same(e, p)), None)
        if match:
            unused.remove(match)
        parts.append(Part(p, match[1] if match else None, match[0] if match else ""))
    return lay, parts


def _same(e: Partition, p: PartitionPlan) -> bool:
    if p.filesystem == "swap":
        return e.fs_type == "swap" or e.mountpoint == "swap"
    mp = e.mountpoint or ""
    return mp == p.mountpoint or (p.designator == "esp" and mp in ("/efi", "/boot/efi"))


def problems(parts: list[Part]) -> list[Problem]:
    """What anaconda cannot make: erofs; another type than DPS's at a DPS mount point
    (dps-fixup gives those their DPS types)."""
    out = []
    for part in parts:
        p, src = part.plan, part.source
        if src is None:
            continue
        if p.filesystem == "erofs":
            out.append(Problem(f"{part.key}.fs_type", "anaconda cannot create erofs file systems"))
        if src.part_type and p.designator == "linux-generic" and p.mountpoint in _DPS_MOUNTS:
            out.append(Problem(f"{part.key}.part_type", f"the kickstart's %post (dps-fixup) gives "
                               f"{p.mountpoint} its DPS type; another type there is not "
                               "supported in kickstarts"))  # fmt: skip
    return out


_DPS_MOUNTS = ("/", "/usr", "/home", "/srv", "/var", "/var/tmp")


def part_lines(parts: list[Part]) -> list[dict[str, Any]]:
    """One `part` per partition; the ESP where anaconda wants it (/boot/efi)."""
    out = []
    for part in parts:
        p = part.plan
        size = max(1, p.size // MiB)
        label = sh(f"{part.key}.label", part.label) if part.label else None
        if p.designator == "esp":
            out.append({"mountpoint": "/boot/efi", "fstype": "efi", "size": size, "label": label})
        elif p.filesystem == "swap":
            out.append({"mountpoint": "swap", "fstype": None, "size": size, "label": label})
        else:
            out.append({"mountpoint": sh(f"{part.key}.mountpoint", p.mountpoint),
                        "fstype": p.filesystem, "size": size, "label": label,
                        "grow": p.designator == "root"})  # fmt: skip
    return out


def edits(part: Part) -> list[tuple[str, str]]:
    p, src = part.plan, part.source
    out = []
    if p.label != p.type_name:  # a GPT name the blueprint gave (part_label, versioned_label)
        out.append(("--part-label", p.label))
    if src is not None and src.part_uuid:
        out.append(("--part-uuid", p.uuid))
    if p.attrs and src is not None and src.flags is not None:  # flags the blueprint gave
        bits = [str(b) for b in range(48, 64) if p.attrs & (1 << b)]
        out.append(("--part-attrs", "GUID:" + ",".join(bits)))
    if p.designator == "linux-generic" and p.type_name == "custom":
        out.append(("--part-type", p.type_uuid))
    return out


def gpt_edits(parts: list[Part]) -> list[str]:
    out = []
    for part in parts:
        changes = edits(part)
        if not changes:
            continue
        p = part.plan
        label = part.label or p.fs_label
        mounted = "/boot/efi" if p.designator == "esp" else p.mountpoint
        where = (f"blkid -L {sh(f'{part.key}.label', label)}" if p.filesystem == "swap"
                 else f"findmnt -no SOURCE -M {sh(f'{part.key}.mountpoint', mounted)}")  # fmt: skip
        out.append(f'dps_part_dev=$(readlink -f "$({where})")')
        out.append('dps_part_disk=/dev/$(lsblk -dno PKNAME "$dps_part_dev")')
        out.append('dps_part_num=$(cat "/sys/class/block/$(basename "$dps_part_dev")/partition")')
        for option, value in changes:
            word = sh(f"{part.key}.{option.removeprefix('--').replace('-', '_')}", value)
            out.append(f'sfdisk -q --no-reread --no-tell-kernel {option} "$dps_part_disk" '
                       f'"$dps_part_num" {word}')  # fmt: skip
    return out
