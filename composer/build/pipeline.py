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

import concurrent.futures
import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from composer.build import describe, keys, space
from composer.build.cache import IN_USE_GRACE, StageCache, max_size_from_env, sweep_temporaries
from composer.build.context import BuildResult, Context, keep_failed_log
from composer.build.facts import FACTS
from composer.build.publish import known_digests, publish, reuse_image, store_image
from composer.build.schedule import FINISHED, Schedule, Task
from composer.build.stages.sequence import KEYS_KNOWN, NAMES, STAGES, WHOLE_IMAGE
from composer.build.stages.stage import Stage
from composer.core import paths
from composer.core.files import atomic_write
from composer.core.log import log_file, prefixed
from composer.core.progress import StageHook, quiet_stage
from composer.core.workdir import build_parent, owned_dir, scratch_dir, sweep
from composer.manifest.load import manifest_name
from composer.manifest.model import Manifest
from composer.plan.plan import Plan

STAGING = ".{name}.partial-"  # the staging directory's prefix in the output directory
FINDERS = frozenset(stage for stage, _ in FACTS.values() if stage)  # stages that find facts
DROP_TREE = "root tree removal"  # what no stage reads any more goes while others work
TREE_READ_LAST = "filesystems"  # the last stage that reads the root tree
LOOKUP = "image lookup"  # the whole image looked up in the stage cache, once every key is known
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
    started = time.monotonic()
    cache_cap = max_size_from_env()  # a bad value fails before any work
    output_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or paths.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    scratch, where = build_parent(_scratch_estimate(plan), work_root)
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
            ctx.note(f"scratch directory {work} ({where})")
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
    published.elapsed = round(time.monotonic() - started, 1)
    if use_cache and cache_cap is not None:
        try:
            StageCache(cache).prune(max_size=cache_cap, grace=IN_USE_GRACE)
        except OSError as exc:  # the image is published; a cache that cannot shrink is a note
            published.warnings.append(f"stage cache not trimmed: {exc}")
    return published


def _scratch_estimate(plan: Plan) -> int:
    """The scratch a build of ``plan`` needs with nothing cached (composer/build/space.py)."""
    fresh = space.estimate(
        len(plan.packages), plan.formats, plan.qcow2_compression, cached_tree=None, store=False
    )
    return fresh.scratch


def _run_stages(ctx: Context, hook: StageHook) -> Path:
    """Every stage that applies to the plan, overlapping where their declarations allow
    (:func:`stage_needs`), or the cached image once the keys are known; the staged manifest."""
    reused: list[Manifest] = []
    applying = [s for s in STAGES if s.applies(ctx.plan)]
    with contextlib.ExitStack() as held:

        def lookup() -> str | None:
            """Every key, then the whole image from the stage cache (held: one build at a time
            makes it)."""
            if ctx.facts is not None:
                found = keys.repo_digests(ctx.made.local_repos)
                ctx.facts = dataclasses.replace(ctx.facts, local_repos=found)
                ctx.keys = keys.derive(ctx.plan, ctx.facts, STAGES)
            held.enter_context(ctx.building(WHOLE_IMAGE))
            manifest = _reuse_image(ctx, hook)
            if manifest is None:
                ctx.image_missed.set()
                return None
            reused.append(manifest)
            return FINISHED

        runs: dict[str, Callable[[], str | None]] = {
            s.name: _stage_task(ctx, hook, s, lambda: schedule) for s in applying
        }
        runs |= {LOOKUP: lookup, DROP_TREE: _drop_tree(ctx)}
        tasks = [Task(name, needs, runs[name]) for name, needs in task_order(applying)]
        schedule = Schedule(tasks)
        schedule.run()
        ctx.timings = {n: ctx.timings[n] for n in NAMES if n in ctx.timings}  # listed order
        if reused:
            # the image came whole: what an early stage looked up meanwhile was not used
            early = {s.name for s in applying if s.early}
            ctx.status = {n: v for n, v in ctx.status.items() if n not in early}
            return _write_manifest(ctx, reused[0].model_copy(update={"cache": dict(ctx.status)}))
        return _describe_and_store(ctx)


def _describe_and_store(ctx: Context) -> Path:
    """The manifest (its PCR predictions hash the UKI) is made in a thread while the outputs
    are copied into the stage cache's entry; the entry's manifest is copied last."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="describe") as pool:
        described = pool.submit(describe.manifest, ctx)
        staged: list[Path] = []

        def manifest() -> Path:
            if not staged:
                staged.append(_write_manifest(ctx, described.result()))
            return staged[0]

        ctx.store(
            WHOLE_IMAGE,
            lambda d: store_image(ctx.made.files, manifest, d),
            known_digests(ctx.made.outputs),
            sync=False,  # every file is hashed when the entry is reused (reuse_image)
        )
        return manifest()


def task_order(applying: Sequence[Stage]) -> list[tuple[str, frozenset[str]]]:
    """The schedule's tasks (composer/build/schedule.py) in their listed order, each with what
    it waits for: the stages that apply, the whole-image lookup once every key can be known
    (after the stages that find facts out and the early ones), the root tree's removal after
    the last stage that reads it."""
    tasks = [(s.name, stage_needs(s, applying)) for s in applying]
    before = [s.name for s in applying if NAMES.index(s.name) < KEYS_KNOWN and not s.early]
    early = sum(1 for s in applying if s.early or NAMES.index(s.name) < KEYS_KNOWN)
    tasks.insert(early, (LOOKUP, frozenset(before)))
    last_reader = [name for name, _ in tasks].index(TREE_READ_LAST) + 1
    tasks.insert(last_reader, (DROP_TREE, frozenset({TREE_READ_LAST})))
    return tasks


def stage_needs(stage: Stage, applying: Sequence[Stage]) -> frozenset[str]:
    """What a stage waits for: the stages it comes ``after`` and those that find the facts
    it reads (composer/build/facts.py); from the whole-image lookup on (KEYS_KNOWN), also the
    lookup (but for an ``early`` stage, which may start before it: package-check, the root
    tree), every early stage (a blueprint the archive cannot satisfy fails before the long
    stages; the stages after the root work on its tree) and the stage listed before it: those
    stages run one at a time, in their order, as the uki stage and customization both work on
    the root tree."""
    names = [s.name for s in applying]
    needs = set(stage.after) | {FACTS[i][0] for i in stage.inputs if i in FACTS and FACTS[i][0]}
    index = NAMES.index(stage.name)
    if index >= KEYS_KNOWN and not stage.early:
        needs.add(LOOKUP)
        needs |= {s.name for s in applying if s.early}
        earlier = [n for n in names if NAMES.index(n) < index]
        if earlier:
            needs.add(earlier[-1])
    return frozenset(n for n in needs if n in names or n == LOOKUP)


def _drop_tree(ctx: Context) -> Callable[[], None]:
    """The root tree removed once the last stage that reads it has ended, while the disk
    and its formats are made (otherwise the scratch directory's removal does it at the end)."""

    def run() -> None:
        if ctx.made.root is not None:
            shutil.rmtree(ctx.made.root, ignore_errors=True)

    return run


def _stage_task(
    ctx: Context, hook: StageHook, stage: Stage, schedule: Callable[[], Schedule]
) -> Callable[[], None]:
    def prefix() -> str:
        return f"[{stage.name}] " if len(schedule().running() & set(NAMES)) > 1 else ""

    def run() -> None:
        with _timed(ctx, hook, stage.name), prefixed(prefix):
            stage.run(ctx)
        if stage.name in FINDERS and ctx.facts is not None:  # the keys known so far
            ctx.keys = keys.derive(ctx.plan, ctx.facts, STAGES)

    return run


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
    # the manifest of this build: its own timings and composer (its stage cache use: after)
    this_build = {
        "timings": {n: ctx.timings[n] for n in NAMES if n in ctx.timings},
        "composer": describe.composer_record(),
    }
    return manifest.model_copy(update=this_build)


def _write_manifest(ctx: Context, manifest: Manifest) -> Path:
    ctx.made.manifest = manifest
    path = ctx.staging / manifest_name(ctx.plan.name)
    atomic_write(path, manifest.to_json())
    return path
