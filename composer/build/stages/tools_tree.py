"""The tools tree: Debian trixie with dracut, ukify, systemd-boot and GRUB, which every
command that needs them runs chrooted into (composer/toolchain/toolstree.py)."""

from __future__ import annotations

from composer.build.context import Context
from composer.build.stages.stage import Stage
from composer.toolchain.toolstree import ensure_tools_tree, tools_tree_path, tools_tree_ready


def run(ctx: Context) -> None:
    if tools_tree_ready(tools_tree_path(ctx.cache, ctx.plan.arch)):
        ctx.reused.add(STAGE.name)
    ctx.made.tools_tree = ensure_tools_tree(ctx.cache, ctx.plan.arch)


STAGE = Stage(
    "tools-tree",
    "a Debian trixie tree with dracut, ukify, systemd-boot and GRUB (the host's bookworm has "
    "no ukify), made with mmdebstrap once and kept in the cache",
    inputs=("plan.architecture", "tools"),
    run=run,
)
