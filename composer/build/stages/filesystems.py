"""One file system per partition, made as a file from the customized root tree (each
partition takes the subtree under its mount point): composer/build/fs/."""

from __future__ import annotations

from composer.build.context import Context
from composer.build.fs.fs import Reproducible
from composer.build.fs.partitions import build_partitions
from composer.build.reproducible import clamp_mtimes
from composer.build.stages.stage import Stage


def run(ctx: Context) -> None:
    root = ctx.made.root
    assert root is not None
    clamp_mtimes(root, ctx.epoch)
    repro = Reproducible(ctx.epoch, ctx.made.tools_tree)
    ctx.made.partition_images = build_partitions(ctx.plan, root, ctx.work / "parts", repro)


STAGE = Stage(
    "filesystems",
    "one file system per partition from the tree (mkfs.ext4 -d, mkfs.btrfs --rootdir, "
    "mkfs.erofs, mkfs.xfs -p, mkswap), every timestamp at SOURCE_DATE_EPOCH",
    inputs=("plan.partitions", "plan.seed", "epoch"),
    after=("customize", "tools-tree"),
    run=run,
)
