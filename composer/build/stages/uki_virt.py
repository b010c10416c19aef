"""uki-virt for an image whose blueprint lists it: the cached local repository the uki stage
installs the package from into the root tree (composer/build/placed_uki.py, composer/uki_virt/)."""

from __future__ import annotations

from composer.build import placed_uki
from composer.build.context import Context
from composer.build.stages.stage import Stage
from composer.core import tools


def run(ctx: Context) -> None:
    """At a lower CPU priority: beside the root tree (package-check, then mmdebstrap), the
    longer chain to the image once a tools tree is cached, it has time to spare; it takes
    what the root tree leaves (with the tools tree made in the build, measured a gain too:
    docs/benchmarks.md)."""
    tools.lower_priority()
    built = placed_uki.prepare_repo(ctx.plan, ctx.cache)
    if built is not None and built.cached:
        ctx.reused.add(STAGE.name)
    ctx.made.local_repos = [built.repo] if built is not None else []


STAGE = Stage(
    "uki-virt",
    "when the blueprint lists uki-virt: the distribution kernel's generic UKI as .deb/.rpm in "
    "a local repository, built once per kernel and configuration and kept in the cache",
    inputs=(
        "plan.distro",
        "plan.suite",
        "plan.mirror",
        "plan.architecture",
        "plan.cmdline",
        "plan.packages",
    ),
    # not after the tools tree: it resolves, downloads and unpacks the kernel while a cold
    # build makes the tree, and waits for the tree's lock only then (composer/uki_virt/virt.py);
    # what the tree makes of it reaches the later stages' keys as the repository's digests
    run=run,
    applies=placed_uki.lists_uki_virt,
)
