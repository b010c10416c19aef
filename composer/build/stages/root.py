"""The root tree: the distribution's packages installed by its backend (apt: mmdebstrap, dnf:
dnf --installroot), before any customization; cached. Before it, the disk space the rest of
the build needs is checked (composer/build/space.py).

It starts before the whole image is looked up (``early``), beside the uki-virt build (the
uki-virt package, when the composer builds it, is installed into the tree by the uki stage)
and beside package-check: it installs the packages package-check has downloaded while they
are judged, and is stopped when the judgement fails. A cached tree is copied out only once
the image is known not to be cached whole."""

from __future__ import annotations

from pathlib import Path

from composer.build import placed_uki, space
from composer.build.cache import StageCache
from composer.build.context import Context
from composer.build.stages.package_check import ARCHIVE_REQUEST, index_copy
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
            ctx.wait_until(ctx.image_missed)  # copied out only when the image is not cached
            copy_tree(entry / "tree", root)
        else:
            ctx.wait_until(ctx.packages_downloaded)  # installed from package-check's downloads
            backend.make_root(
                ctx.plan,
                root,
                placed_uki.archive_packages(ctx.plan),
                ctx.pins,
                cache=ctx.cache,
                epoch=ctx.epoch,
                index=index if (index := index_copy(ctx)).is_dir() else None,
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
        store_links=space.same_file_system(ctx.places.cache, ctx.places.output),
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
    ),
    cached=True,
    run=run,
    # beside uki-virt (the uki stage installs that into the tree) and package-check (its
    # packages installed once downloaded, while package-check judges them)
    early=True,
)
