"""The disk: a sparse raw file, its GPT written by sfdisk (type GUIDs, partition UUIDs and the
disk GUID from the plan), the file systems copied in at their offsets. No loop devices, no
mounts."""

from __future__ import annotations

from composer.build.context import Context
from composer.build.fs.fs import copy_into
from composer.build.stages.stage import Stage
from composer.image.gpt import GptEntry, write_gpt
from composer.plan.layout import PartitionPlan


def run(ctx: Context) -> None:
    plan, made = ctx.plan, ctx.made
    assert made.esp_image is not None
    raw = ctx.staging / plan.output_name("raw")
    with open(raw, "wb") as fh:
        fh.truncate(plan.disk_size)
    write_gpt(raw, plan.disk_guid, [_gpt_entry(p) for p in plan.partitions])
    copy_into(made.esp_image, raw, plan.partition("esp").start)
    for p in plan.partitions:
        if p.number in made.partition_images:
            copy_into(made.partition_images[p.number], raw, p.start)
    made.raw = raw


def _gpt_entry(p: PartitionPlan) -> GptEntry:
    return GptEntry(p.number, p.start, p.size, p.type_uuid, p.uuid, p.label, p.attrs)


STAGE = Stage(
    "disk",
    "a sparse raw disk: the GPT by sfdisk (type GUIDs, partition UUIDs, disk GUID from the "
    "plan's seed), the file systems copied in at their offsets; no loop devices, no mounts",
    inputs=("plan.disk_size", "plan.disk_guid", "plan.partitions"),
    after=("esp", "filesystems"),
    run=run,
)
