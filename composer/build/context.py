"""What the build stages share: the build's context (log, cache lookups and stores, disk-space
needs, warnings), its result, stage timing, what becomes of a failed build's log, and an image
the stage cache already holds."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.build import space
from composer.build.cache import StageCache
from composer.build.publish import keep_log, reuse_image
from composer.core.files import write_json
from composer.core.lifetime import Interrupted
from composer.core.log import note
from composer.manifest.load import manifest_name
from composer.plan.plan import Plan

LOG = logging.getLogger(__name__)
StageHook = Callable[[str], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def quiet_stage(name: str) -> Iterator[None]:
    yield


@dataclass
class BuildResult:
    manifest: Path
    outputs: list[Path]
    log: Path
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict[str, str] = field(default_factory=dict)  # stage -> hit, miss, off
    warnings: list[str] = field(default_factory=list)  # damaged cache entries replaced, …


@dataclass
class Context:
    plan: Plan
    work: Path
    cache: Path
    log: Path
    places: space.Places
    use_cache: bool = True
    epoch: int | None = None  # SOURCE_DATE_EPOCH of every file in the image
    timings: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # stage -> hit, miss, off
    needs: space.Needs = field(default_factory=space.Needs)
    warnings: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        note(LOG, text)

    def warn(self, text: str) -> None:
        self.note(text)
        self.warnings.append(text)

    def lookup(self, stage: str, key: str | None, *, hash_files: bool = False) -> Path | None:
        """The stage's cache entry for ``key``, recording hit or miss (off: no key); a
        damaged entry is removed (and said so): a miss."""
        if key is None:
            self.status[stage] = "off"
            return None
        entry = StageCache(self.cache).get(stage, key, hash_files=hash_files, log=self.warn)
        self.status[stage] = "hit" if entry is not None else "miss"
        self.note(f"stage cache {stage} {key}: {self.status[stage]}")
        return entry

    def building(self, stage: str, key: str | None) -> contextlib.AbstractContextManager[None]:
        """One build at a time looks up, makes and stores the entry of ``key``."""
        if key is None:
            return contextlib.nullcontext()
        return StageCache(self.cache).building(stage, key)

    def store(
        self,
        stage: str,
        key: str | None,
        make: Callable[[Path], object],
        known: dict[str, str] | None = None,
    ) -> None:
        if key is not None:
            self.note(f"stage cache {stage} {key}: storing")
            StageCache(self.cache).put(stage, key, make, {"plan": self.plan.name}, known)


def keep_failed_log(ctx: Context, output_dir: Path, exc: BaseException) -> None:
    """The log of a failed build goes to the output directory; the error names it. What
    else the staging directory holds goes first (a full disk leaves room for the last line)."""
    for path in ctx.log.parent.iterdir():
        if path == ctx.log:
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    if isinstance(exc, KeyboardInterrupt | Interrupted):
        why = f"interrupted ({'SIGINT' if isinstance(exc, KeyboardInterrupt) else exc})"
    else:
        why = "failed: " + (str(exc).strip() or type(exc).__name__).replace("\n", "\n# ")
    with contextlib.suppress(OSError):
        ctx.note(f"build {why}")
    kept = keep_log(ctx.log, output_dir, ctx.plan.name)
    if kept is not None:
        exc.add_note(f"build log: {kept}")


@contextlib.contextmanager
def timed(ctx: Context, stage: StageHook, name: str) -> Iterator[None]:
    start = time.monotonic()
    ctx.note(f"stage: {name}")
    with stage(name):
        yield
    ctx.timings[name] = round(time.monotonic() - start, 2)


def image_needs(ctx: Context, root_entry: Path | None, store: bool) -> space.Needs:
    """What the image stages still need on disk (composer/build/space.py)."""
    plan = ctx.plan
    cached_tree = None
    if root_entry is not None:
        cached_tree = StageCache(ctx.cache).recorded_size(root_entry)
    return space.estimate(
        len(plan.packages),
        plan.formats,
        plan.qcow2_compression,
        cached_tree=cached_tree,
        store=store,
    )


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def reuse_cached_image(ctx: Context, entry: Path, staging: Path) -> BuildResult | None:
    """Every output of an earlier build with the same key, copied into ``staging`` and
    checked against the entry's record; None when the entry turned out damaged (it is
    removed: the image is built again)."""
    size = StageCache(ctx.cache).recorded_size(entry)
    ctx.needs = space.Needs(output=size or 0, basis=["the cached image's outputs"])
    space.require(ctx.places, ctx.needs)
    reused = reuse_image(entry, staging)
    if isinstance(reused, str):
        for path in staging.iterdir():
            if path != ctx.log:
                path.unlink()
        StageCache(ctx.cache).discard(entry)
        ctx.warn(f"stage cache image {entry.name}: damaged entry removed: {reused}")
        ctx.status["image"] = "miss"
        return None
    files, manifest = reused
    manifest["cache"] = ctx.status
    manifest["timings"] = ctx.timings
    manifest_path = staging / manifest_name(ctx.plan.name)
    write_json(manifest_path, manifest)
    return BuildResult(manifest_path, files, ctx.log, ctx.timings, ctx.status)
