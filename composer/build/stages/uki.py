"""The image's UKI in the work directory (it may be signed there later) and its path on the
ESP: the one uki-virt's install scripts put on the tree's ESP (the package installed into the
tree here when the composer built it), else built from the root tree
before customizations (the initrd is generic: nothing of the blueprint's customizations
reaches it, so one UKI serves every image of one package set); cached."""

from __future__ import annotations

import shutil

from composer.build import placed_uki
from composer.build.bootchain.systemd_boot import uki_file_name
from composer.build.context import Context
from composer.build.stages.stage import Stage
from composer.rootfs import apt
from composer.spec import dps
from composer.toolchain.ukify import PcrSigning, Uki, build_uki


def run(ctx: Context) -> None:
    plan, work, root = ctx.plan, ctx.work, ctx.made.root
    assert root is not None and ctx.made.tools_tree is not None
    if placed_uki.lists_uki_virt(plan):  # the UKI the package's scripts placed
        placed_uki.install_from_repos(root, ctx.made.local_repos)
        placed = placed_uki.take_placed_uki(root, work / "uki")
        ctx.made.uki, ctx.made.uki_rel = (
            Uki(placed.path, placed.kernel_version, plan.cmdline),
            placed.rel,
        )
        return
    kver = apt.kernel_version(root)
    ctx.made.uki_rel = f"EFI/Linux/{uki_file_name(plan.os_id, kver)}"
    with ctx.building(STAGE.name):
        entry = ctx.lookup(STAGE.name, hash_files=True)
        if entry is None:
            usr_type = str(dps.by_designator("usr", plan.arch.dps).uuid)  # initrd /usr discovery
            uki = build_uki(
                ctx.made.tools_tree, root, kver, plan.cmdline, plan.arch.efi, work / "uki",
                usr_type, pcr=_signing(ctx),
            )  # fmt: skip
            ctx.store(STAGE.name, lambda d: shutil.copyfile(uki.path, d / "uki.efi"))
            ctx.made.uki = uki
            return
    dest = work / "uki" / "uki.efi"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry / "uki.efi", dest)
    ctx.made.uki = Uki(dest, kver, plan.cmdline)


def _signing(ctx: Context) -> PcrSigning | None:
    """The signed PCR policy the UKI carries ([measured] sign_policy)."""
    if ctx.pcr_key is None:
        return None
    return PcrSigning(ctx.pcr_key[0])


STAGE = Stage(
    "uki",
    "the generic UKI: the one uki-virt's scripts placed on the tree's ESP (the package, when "
    "built here, installed into the tree by dpkg), else dracut (not "
    "host-only, the virt module set) and ukify in the tools tree, from the root tree before "
    "customizations; with [measured] sign_policy, a signed PCR 11 policy (.pcrsig, .pcrpkey)",
    inputs=(
        "plan.cmdline",
        "plan.architecture",
        "plan.os_id",
        "plan.pcr_policy",
        "pcr_key",
        "local_repos",
    ),
    after=("root", "tools-tree"),
    cached=True,
    run=run,
)
