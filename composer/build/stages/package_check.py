"""What the archive decides, before the long stages: the whole package set resolved, every
name, version, unit, user and group the blueprint asks for checked
(composer/rootfs/resolution.py); a set resolved before under this key is not resolved again."""

from __future__ import annotations

from pathlib import Path

from composer.build.context import Context
from composer.build.stages.stage import Stage
from composer.core import tools
from composer.rootfs import resolution

# What the archive is asked for: the package set of a distribution, suite, mirror and
# architecture (the root stage installs the same set).
ARCHIVE_REQUEST = (
    "plan.distro",
    "plan.suite",
    "plan.mirror",
    "plan.architecture",
    "plan.packages",
)


def index_copy(ctx: Context) -> Path:
    """Where package-check puts the archive's index it resolved with, when it fetched one; the
    root tree's mmdebstrap installs from it (composer/rootfs/apt.py)."""
    return ctx.work / "apt-lists"


def run(ctx: Context) -> None:
    def downloaded() -> None:
        """The root tree may be installed from here on; reading the packages' facts, beside
        it, takes the CPU its mmdebstrap leaves (composer/core/tools.py)."""
        ctx.packages_downloaded.set()
        tools.lower_priority()

    resolution.check(
        ctx.plan,
        ctx.pins,
        cache=ctx.cache,
        key=ctx.key(STAGE.name),
        downloaded=downloaded,
        lists_to=index_copy(ctx),
    )
    ctx.packages_downloaded.set()  # also when nothing was downloaded (an empty set)


STAGE = Stage(
    "package-check",
    "the whole package set resolved and judged (names, versions, units, users and groups the "
    "blueprint asks for), so that a blueprint the archive cannot satisfy fails in seconds",
    inputs=(*ARCHIVE_REQUEST, "pins", "index"),
    run=run,
    early=True,  # beside the tools tree and uki-virt: an unsatisfiable blueprint fails first
)
