"""The root tree: the distribution's packages installed by its backend (apt: mmdebstrap, dnf:
dnf --installroot), before any customization; cached. Before it, the disk space the rest of
the build needs is checked (composer/build/space.py)."""

from __future__ import annotations

from pathlib import Path

from composer.build import space
from composer.build.cache import StageCache
from composer.build.context import Context
from composer.build.stages.package_check import ARCHIVE_REQUEST
from composer.build.stages.stage import Stage
from composer.core import tools
from composer.rootfs import backend


def run(ctx: Context) -> None:
    root = ctx.work / "root"
    with ctx.building(STAGE.name):
        entry = ctx.lookup(STAGE.name)
        ctx.needs = image_needs(ctx, entry)
        space.require(ctx.places, ctx.needs)
        if entry is not None:
            copy_tree(entry / "tree", root)
        else:
            backend.make_root(
                ctx.plan,
                root,
                ctx.pins,
                cache=ctx.cache,
                local_repos=ctx.made.local_repos,
                epoch=ctx.epoch,
            )
            ctx.store(STAGE.name, lambda d: copy_tree(root, d / "tree"))
    ctx.made.root = root


def image_needs(ctx: Context, root_entry: Path | None) -> space.Needs:
    """What the stages from here on still need on disk (composer/build/space.py)."""
    plan = ctx.plan
    cached_tree = None
    if root_entry is not None:
        cached_tree = StageCache(ctx.cache).recorded_size(root_entry)
    return space.estimate(
        len(plan.packages),
        plan.formats,
        plan.qcow2_compression,
        cached_tree=cached_tree,
        store=ctx.facts is not None,
    )


def copy_tree(src: Path, dest: Path) -> None:
    """A copy of a root tree: owners, modes, hard links, xattrs kept; reflinked where the
    file system can."""
    tools.run(["cp", "-a", "--reflink=auto", "--", str(src), str(dest)])


STAGE = Stage(
    "root",
    "the distribution's packages installed with mmdebstrap (minbase plus systemd, udev, the "
    "kernel and the blueprint's packages, INITRD=No) or dnf --installroot; downloaded "
    "packages are kept in a cache",
    inputs=(
        *ARCHIVE_REQUEST,
        "plan.customizations.repositories",
        "pins",
        "index",
        "epoch",
        "local_repos",
    ),
    after=("tools-tree",),
    cached=True,
    run=run,
)
