"""The ESP: the boot chain of ``[boot] loader`` (composer/build/bootchain/), signed with
``[secureboot] sign``, as a FAT32 file made by mkfs.vfat and filled with mtools; the varstore
shipped beside the image when the chain needs one."""

from __future__ import annotations

from composer.build.bootchain.chain import stage_boot_chain
from composer.build.context import Context
from composer.build.fs.fs import Reproducible, make_vfat
from composer.build.stages.stage import Stage


def run(ctx: Context) -> None:
    plan, work, made = ctx.plan, ctx.work, ctx.made
    assert made.uki is not None and made.tools_tree is not None
    esp_tree = work / "esp"
    made.chain = stage_boot_chain(
        plan,
        esp_tree,
        made.tools_tree,
        made.uki.path,
        made.uki_rel,
        cache=ctx.cache,
        work=work / "boot",
        varstore_dest=ctx.staging / f"{plan.name}.vars.fd",
    )
    esp = plan.partition("esp")
    volume_id = plan.derive("fs:esp:volume-id").hex[:8]
    made.esp_tree, made.esp_image = esp_tree, work / "esp.img"
    repro = Reproducible(ctx.epoch, made.tools_tree)
    make_vfat(made.esp_image, esp.size, esp_tree, volume_id, esp.fs_label, repro)


STAGE = Stage(
    "esp",
    "the boot chain of [boot] loader (systemd-boot, GRUB or the UKI alone) with the UKI, "
    "signed with [secureboot] sign, as a FAT32 file (mkfs.vfat, mtools); the varstore "
    "NAME.vars.fd when the chain needs one",
    inputs=(
        "plan.name",
        "plan.architecture",
        "plan.loader",
        "plan.loader_timeout",
        "plan.secureboot_sign",
        "plan.secureboot_keys",
        "plan.partitions",
        "plan.seed",
        "secureboot_keys",
        "epoch",
    ),
    after=("uki", "root", "tools-tree"),
    run=run,
)
