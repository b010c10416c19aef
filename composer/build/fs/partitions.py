"""From one root tree to one file system per partition.

Each partition with a mount point takes the subtree of the root tree under its mount point
(moved out, deepest mount points first, so /var/tmp's files land in the /var/tmp partition
and /var keeps only the empty mount point); the directory left behind is the mount point.
The root partition gets what remains. The ESP is made by the boot-chain stage.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from composer.build.fs.fs import HOST, Reproducible
from composer.build.fs.mkfs import make_filesystem
from composer.build.space import is_disk_full
from composer.core.errors import ComposerError
from composer.manifest.model import Partition
from composer.plan.layout import PartitionPlan
from composer.plan.plan import Plan
from composer.rootfs.intree import InTreeError, Tree


def split_subtrees(root: Path, parts: Sequence[PartitionPlan], work: Path) -> dict[int, Path]:
    """Move the content under each partition's mount point into its own directory.

    A mount point is a real directory of the tree, reached without any symbolic link: a path
    that crosses one (``/var/run/x`` in a Debian tree) is refused, and every move is a
    renameat(2) between descriptors, so nothing outside the tree is ever moved."""
    work.mkdir(parents=True, exist_ok=True)
    trees: dict[int, Path] = {}
    mounted = [p for p in parts if p.mountpoint not in ("/", "swap") and p.designator != "esp"]
    with Tree(root) as t:
        for p in sorted(mounted, key=lambda p: p.mountpoint.count("/"), reverse=True):
            dest = work / f"part{p.number}"
            dest.mkdir()
            src = _open_mount_point(t, p)
            dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                st = os.fstat(src)
                os.fchown(dest_fd, st.st_uid, st.st_gid)
                os.fchmod(dest_fd, stat.S_IMODE(st.st_mode))
                for name in os.listdir(src):
                    os.rename(name, name, src_dir_fd=src, dst_dir_fd=dest_fd)
            finally:
                os.close(dest_fd)
                os.close(src)
            trees[p.number] = dest
    return trees


def _open_mount_point(t: Tree, p: PartitionPlan) -> int:
    """A descriptor of the mount point's directory (made 0755 when missing)."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    try:
        try:
            return t.open(p.mountpoint, flags, no_symlinks=True)
        except FileNotFoundError:
            t.makedirs(p.mountpoint, no_symlinks=True)
            return t.open(p.mountpoint, flags, no_symlinks=True)
    except (OSError, InTreeError) as exc:
        if is_disk_full(exc):
            raise  # the host's condition: the build names the directory that ran out
        link = t.first_link(p.mountpoint)
        why = f"it crosses the symbolic link {link}" if link else f"not a directory ({exc})"
        raise ComposerError(
            f"partition {p.number}: {p.mountpoint} cannot be a mount point in the image: {why}"
        ) from None


def build_partitions(
    plan: Plan, root: Path, work: Path, repro: Reproducible = HOST
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
            repro=repro,
        )
        images[p.number] = image
    return images


def manifest_entry(p: PartitionPlan) -> Partition:
    """What the manifest says of a partition (validation compares the booted guest to it)."""
    return Partition(
        number=p.number,
        designator=p.designator,
        type_name=p.type_name,
        type_uuid=p.type_uuid,
        uuid=p.uuid,
        label=p.label,
        offset=p.start,
        size=p.size,
        filesystem=p.filesystem,
        fs_uuid=p.fs_uuid,
        mountpoint=p.mountpoint,
        flags=list(p.flags),
        attrs=p.attrs,
        fstab=p.fstab,
        read_only=p.read_only,
    )
