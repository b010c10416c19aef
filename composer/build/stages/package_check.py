"""What the archive decides, before the long stages: the whole package set resolved, every
name, version, unit, user and group the blueprint asks for checked
(composer/rootfs/resolution.py); a set resolved before under this key is not resolved again."""

from __future__ import annotations

from composer.build.context import Context
from composer.build.stages.stage import Stage
from composer.rootfs import resolution


def run(ctx: Context) -> None:
    resolution.check(ctx.plan, ctx.pins, cache=ctx.cache, key=ctx.key(STAGE.name))


STAGE = Stage(
    "package-check",
    "the whole package set resolved and judged (names, versions, units, users and groups the "
    "blueprint asks for), so that a blueprint the archive cannot satisfy fails in seconds",
    inputs=(
        "plan.distro",
        "plan.suite",
        "plan.mirror",
        "plan.architecture",
        "plan.packages",
        "pins",
        "index",
    ),
    run=run,
)
