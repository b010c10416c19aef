"""From one root tree to one file system per partition.

Each partition with a mount point takes the subtree of the root tree under its mount point
(moved out, deepest mount points first, so /var/tmp's files land in the /var/tmp partition
and /var keeps only the empty mount point); the directory left behind is the mount point.
The root partition gets what remains. The ESP is made by the boot-chain stage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from composer.disk.fs import HOST, Reproducible
from composer.disk.mkfs import make_filesystem
from composer.errors import ComposerError
from composer.layout import PartitionPlan
from composer.plan import Plan


def split_subtrees(root: Path, parts: Sequence[PartitionPlan], work: Path) -> dict[int, Path]:
    """Move the content under each partition's mount point into its own directory."""
    work.mkdir(parents=True, exist_ok=True)
    trees: dict[int, Path] = {}
    mounted = [p for p in parts if p.mountpoint not in ("/", "swap") and p.designator != "esp"]
    for p in sorted(mounted, key=lambda p: p.mountpoint.count("/"), reverse=True):
        src = root / p.mountpoint.lstrip("/")
        dest = work / f"part{p.number}"
        dest.mkdir()
        if src.is_symlink() or (src.exists() and not src.is_dir()):
            raise ComposerError(
                f"partition {p.number}: {p.mountpoint} is not a directory in the image "
                f"({'a symlink' if src.is_symlink() else 'a file'}); it cannot be a mount point"
            )
        if src.is_dir():
            st = src.stat()
            os.chown(dest, st.st_uid, st.st_gid)
            dest.chmod(st.st_mode & 0o7777)
            for child in src.iterdir():
                os.rename(child, dest / child.name)
        else:
            src.mkdir(mode=0o755, parents=True)
            dest.chmod(0o755)
        trees[p.number] = dest
    return trees


def build_partitions(
    plan: Plan, root: Path, work: Path, log: Path, repro: Reproducible = HOST
) -> dict[int, Path]:
    """Partition number -> file-system image, for every partition but the ESP."""
    trees = split_subtrees(root, plan.partitions, work / "trees")
    images: dict[int, Path] = {}
    for p in plan.partitions:
        if p.designator == "esp":
            continue
        ident = "root" if p.designator == "root" else f"{p.number}"
        image = work / f"part{p.number}.img"
        make_filesystem(
            p,
            image,
            root if p.designator == "root" else trees.get(p.number),
            hash_seed=str(plan.derive(f"fs:{ident}:hash-seed")),
            volume_id=plan.derive(f"fs:{p.designator}:volume-id").hex[:8],
            log=log,
            repro=repro,
        )
        images[p.number] = image
    return images


def manifest_entry(p: PartitionPlan) -> dict[str, Any]:
    """What the manifest says of a partition (validation compares the booted guest to it)."""
    return {
        "number": p.number,
        "designator": p.designator,
        "type_name": p.type_name,
        "type_uuid": p.type_uuid,
        "uuid": p.uuid,
        "label": p.label,
        "offset": p.start,
        "size": p.size,
        "filesystem": p.filesystem,
        "fs_uuid": p.fs_uuid,
        "mountpoint": p.mountpoint,
        "flags": list(p.flags),
        "attrs": p.attrs,
        "fstab": p.fstab,
        "read_only": p.read_only,
    }
