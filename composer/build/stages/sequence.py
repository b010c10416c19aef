"""The build's stages, in the order they run: the one list that the build, the stage cache's
keys, the log, timings, progress output, ``dps-composer plan`` and the README follow."""

from __future__ import annotations

from composer.build.facts import FACTS
from composer.build.stages import (
    customize,
    disk,
    esp,
    filesystems,
    image,
    package_check,
    resolve,
    root,
    tools_tree,
    uki,
    uki_virt,
)
from composer.build.stages.stage import Stage

STAGES: tuple[Stage, ...] = (
    tools_tree.STAGE,
    resolve.STAGE,
    package_check.STAGE,  # beside the tools tree: it needs only the archive (resolve's facts)
    uki_virt.STAGE,
    root.STAGE,
    uki.STAGE,
    customize.STAGE,
    esp.STAGE,
    filesystems.STAGE,
    disk.STAGE,
    image.STAGE,
)
NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
# The last stage's cache entry is the whole image: looked up as soon as every key is known,
# that is before the first stage after the last one that finds a fact out.
WHOLE_IMAGE = STAGES[-1].name
KEYS_KNOWN = max(NAMES.index(stage) for stage, _ in FACTS.values() if stage) + 1


def stage(name: str) -> Stage:
    return STAGES[NAMES.index(name)]
