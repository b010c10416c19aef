"""Plan -> image: the stages of composer/build/stages/sequence.py in order, in a private
work directory.

Outputs are made in a hidden staging directory in the output directory and published
(composer/build/publish.py) only when every stage succeeded: an interrupted build leaves no
half-written image, and a failed one leaves its log, ``NAME.build.log``. Scratch and staging
directories are locked temporaries (composer/core/workdir.py) that the next build removes when
a killed build could not. The build log (composer/core/log.py) marks where each stage starts
(``# stage: NAME``) and gets every tool's output and the stage cache's notes.

As soon as every stage's cache key is known (composer/build/keys.py), the stage cache is
asked for the whole image (the last stage's entry): an unchanged blueprint takes its outputs
and runs no further stage. One build at a time makes that entry; the others wait for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from composer.build import describe, keys, space
from composer.build.cache import IN_USE_GRACE, StageCache, max_size_from_env, sweep_temporaries
from composer.build.context import BuildResult, Context, StageHook, keep_failed_log, quiet_stage
from composer.build.publish import known_digests, publish, reuse_image, store_image
from composer.build.stages.sequence import KEYS_KNOWN, STAGES, WHOLE_IMAGE
from composer.core import paths
from composer.core.files import atomic_write
from composer.core.log import log_file
from composer.core.workdir import owned_dir, scratch_dir, sweep, work_parent
from composer.manifest.load import manifest_name
from composer.manifest.model import Manifest
from composer.plan.plan import Plan

STAGING = ".{name}.partial-"  # the staging directory's prefix in the output directory
__all__ = ["BuildResult", "StageHook", "build"]


def build(
    plan: Plan,
    output_dir: Path,
    *,
    cache_dir: Path | None = None,
    stage: StageHook = quiet_stage,
    work_root: Path | None = None,
    use_cache: bool = True,
) -> BuildResult:
    """``use_cache=False`` builds every stage afresh and stores nothing (downloaded packages
    and the tools tree are still reused). A failed or interrupted build leaves its log as
    ``NAME.build.log`` in ``output_dir`` (named in a note on the exception)."""
    cache_cap = max_size_from_env()  # a bad value fails before any work
    output_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or paths.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    scratch = work_parent(work_root)
    sweep(output_dir, STAGING.format(name="*") + "*")  # what killed builds left behind
    sweep_temporaries(cache)
    with (
        scratch_dir(plan.name, scratch) as work,
        owned_dir(output_dir, STAGING.format(name=plan.name)) as staging,
    ):
        log = staging / f"{plan.name}.build.log"
        places = space.Places(scratch, cache, output_dir)
        ctx = Context(plan, work, staging, cache, log, places, use_cache)
        with log_file(log):
            try:
                with space.disk_full_errors(places, lambda: ctx.needs):
                    manifest_path = _run_stages(ctx, stage)
                    files, manifest = publish(
                        plan.name, [*ctx.made.files, log], manifest_path, output_dir
                    )
            except BaseException as exc:
                keep_failed_log(ctx, output_dir, exc)
                raise
    published = BuildResult(manifest, files[:-1], files[-1], ctx.timings, ctx.status, ctx.warnings)
    if use_cache and cache_cap is not None:
        try:
            StageCache(cache).prune(max_size=cache_cap, grace=IN_USE_GRACE)
        except OSError as exc:  # the image is published; a cache that cannot shrink is a note
            published.warnings.append(f"stage cache not trimmed: {exc}")
    return published


def _run_stages(ctx: Context, hook: StageHook) -> Path:
    """Every stage that applies to the plan, in order (or the cached image once the keys are
    known); the staged manifest."""
    with contextlib.ExitStack() as held:
        for index, stage in enumerate(STAGES):
            if index == KEYS_KNOWN:
                if ctx.facts is not None:
                    ctx.keys = keys.derive(ctx.plan, ctx.facts, STAGES)
                held.enter_context(ctx.building(WHOLE_IMAGE))
                reused = _reuse_image(ctx, hook)
                if reused is not None:
                    return _write_manifest(ctx, reused)
            if stage.applies(ctx.plan):
                with _timed(ctx, hook, stage.name):
                    stage.run(ctx)
        path = _write_manifest(ctx, describe.manifest(ctx))
        ctx.store(
            WHOLE_IMAGE,
            lambda d: store_image(ctx.made.files, path, d),
            known_digests(ctx.made.outputs),
        )
        return path


@contextlib.contextmanager
def _timed(ctx: Context, hook: StageHook, name: str) -> Iterator[None]:
    start = time.monotonic()
    ctx.note(f"stage: {name}")
    with hook(name) as report:
        yield
        reused = ctx.status.get(name) == "hit" or name in ctx.reused
        report.state = "cached" if reused else "built"
    ctx.timings[name] = round(time.monotonic() - start, 2)


def _reuse_image(ctx: Context, hook: StageHook) -> Manifest | None:
    """Every output of an earlier build with the same keys, copied into the staging directory
    and checked against the entry's record, with its manifest; None when there is no such
    entry or it turned out damaged (then it is removed, and the image is built again). The
    progress shows the copy as the last stage, cached."""
    entry = ctx.lookup(WHOLE_IMAGE)
    if entry is None:
        return None
    with hook(WHOLE_IMAGE) as report:
        reused = _copy_cached_image(ctx, entry)
        report.state = "cached" if reused is not None else "cache entry damaged: rebuilding"
    return reused


def _copy_cached_image(ctx: Context, entry: Path) -> Manifest | None:
    size = StageCache(ctx.cache).recorded_size(entry)
    ctx.needs = space.Needs(output=size or 0, basis=["the cached image's outputs"])
    space.require(ctx.places, ctx.needs)
    reused = reuse_image(entry, ctx.staging)
    if isinstance(reused, str):
        for path in ctx.staging.iterdir():
            if path != ctx.log:
                path.unlink()
        StageCache(ctx.cache).discard(entry)
        ctx.warn(f"stage cache {WHOLE_IMAGE} {entry.name}: damaged entry removed: {reused}")
        ctx.status[WHOLE_IMAGE] = "miss"
        return None
    ctx.made.files, manifest = reused
    # its ingredients stay warm too: the next customization change needs them
    for stage in STAGES:
        if stage.cached and stage.name != WHOLE_IMAGE:
            ctx.touch(stage.name)
    # the manifest of this build: its own stage cache use, timings and composer
    this_build = {
        "cache": dict(ctx.status),
        "timings": dict(ctx.timings),
        "composer": describe.composer_record(),
    }
    return manifest.model_copy(update=this_build)


def _write_manifest(ctx: Context, manifest: Manifest) -> Path:
    ctx.made.manifest = manifest
    path = ctx.staging / manifest_name(ctx.plan.name)
    atomic_write(path, manifest.to_json())
    return path
