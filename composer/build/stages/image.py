"""The image: every format of ``[image] formats`` made from the raw disk and checked
(composer/build/outputs.py); with NAME.manifest.json (composer/build/describe.py) it is the
stage cache's image entry: an unchanged blueprint takes it and runs no stage after ``resolve``."""

from __future__ import annotations

from composer.build.context import Context
from composer.build.outputs import make_outputs
from composer.build.stages.stage import Stage


def run(ctx: Context) -> None:
    plan, raw = ctx.plan, ctx.made.raw
    assert raw is not None and ctx.made.chain is not None
    outputs = make_outputs(
        raw, plan.formats, lambda fmt: ctx.staging / plan.output_name(fmt), plan.qcow2_compression
    )
    if "raw" not in plan.formats:
        raw.unlink()
    ctx.made.outputs = outputs
    ctx.made.files = [ctx.staging / o.file for o in outputs]
    if ctx.made.chain.varstore is not None:
        ctx.made.files.append(ctx.made.chain.varstore)


STAGE = Stage(
    "image",
    "every format of [image] formats made from the disk and checked (a qcow2 writer of ours, "
    "qemu-img, zstd, xz), listed with its sha256 in NAME.manifest.json beside the "
    "measured-boot predictions",
    inputs=(
        "plan.name",
        "plan.version",
        "plan.architecture",
        "plan.distro",
        "plan.seed",
        "plan.formats",
        "plan.qcow2_compression",
        "plan.validate_timeout",
        "plan.validate_tpm",
        "plan.grow_root",
        "plan.fstab",
        "plan.loader",
        "plan.cmdline",
        "pins",
        "epoch",
    ),
    after=("disk", "esp", "uki", "customize"),
    cached=True,
    run=run,
)
