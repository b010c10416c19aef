"""What the build stages share: the build's context (the plan, its directories, what the
stages found out and made, cache lookups and stores, disk-space needs, warnings), the build's
result, and what becomes of a failed build's log."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from composer.build import space
from composer.build.cache import StageCache
from composer.build.cache_shared import SharedStore, from_env
from composer.build.facts import Facts
from composer.build.publish import keep_log
from composer.core.errors import ComposerError
from composer.core.lifetime import Interrupted, stop_scope
from composer.core.log import note
from composer.manifest.model import Manifest, Output
from composer.plan.plan import Plan
from composer.toolchain.pcrkey import PcrKey
from composer.toolchain.ukify import Uki

if TYPE_CHECKING:
    from composer.build.bootchain.chain import BootChain

LOG = logging.getLogger(__name__)


@dataclass
class BuildResult:
    manifest: Path
    outputs: list[Path]
    log: Path
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict[str, str] = field(default_factory=dict)  # stage -> hit, miss, off
    warnings: list[str] = field(default_factory=list)  # damaged cache entries replaced, …
    elapsed: float = 0.0  # seconds, start to published (stages overlap: not their sum)


@dataclass
class Made:
    """What the stages have made so far, for the stages after them."""

    tools_tree: Path | None = None
    local_repos: list[Path] = field(default_factory=list)
    root: Path | None = None  # the root tree in the work directory
    uki: Uki | None = None  # in the work directory (signed there when signing)
    uki_rel: str = ""  # its path on the ESP
    packages: dict[str, str] = field(default_factory=dict)  # installed: name -> version
    chain: BootChain | None = None
    esp_tree: Path | None = None
    esp_image: Path | None = None
    partition_images: dict[int, Path] = field(default_factory=dict)
    raw: Path | None = None  # the disk, in the staging directory
    outputs: list[Output] = field(default_factory=list)
    manifest: Manifest | None = None
    files: list[Path] = field(default_factory=list)  # outputs and varstore, staged


@dataclass
class Context:
    plan: Plan
    work: Path  # scratch
    staging: Path  # in the output directory: published when every stage succeeded
    cache: Path
    log: Path
    places: space.Places
    use_cache: bool = True
    pins: dict[str, str] = field(default_factory=dict)
    epoch: int = 0  # SOURCE_DATE_EPOCH of every file in the image
    facts: Facts | None = None  # None: nothing cached (no cache, or no readable index)
    pcr_key: tuple[PcrKey, bool] | None = None  # (key, generated) when the UKI signs a policy
    keys: dict[str, str] = field(default_factory=dict)  # stage -> cache key
    made: Made = field(default_factory=Made)
    timings: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # stage -> hit, miss, off
    reused: set[str] = field(default_factory=set)  # stages that took what a cache of their own held
    needs: space.Needs = field(default_factory=space.Needs)
    warnings: list[str] = field(default_factory=list)
    shared: SharedStore | None = field(default_factory=from_env)  # DPS_COMPOSER_CACHE_URL
    # set when the whole image was looked up and is not cached (composer/build/pipeline.py)
    image_missed: threading.Event = field(default_factory=threading.Event)
    # set when package-check has the package set in the package cache (before it judges it)
    packages_downloaded: threading.Event = field(default_factory=threading.Event)

    def note(self, text: str) -> None:
        note(LOG, text)

    def warn(self, text: str) -> None:
        self.note(text)
        self.warnings.append(text)

    def wait_until(self, event: threading.Event) -> None:
        """Return once another stage has set ``event`` (:attr:`image_missed`,
        :attr:`packages_downloaded`). When the build ends or fails meanwhile, it stops this
        thread (:class:`~composer.core.lifetime.Stopped`). Outside a build's schedule nothing
        runs beside, so nothing is waited for."""
        scope = stop_scope()
        while scope is not None and not event.wait(0.1):
            scope.check()

    def key(self, stage: str) -> str | None:
        """The stage's cache key; None when nothing is cached."""
        return self.keys.get(stage) if self.facts is not None else None

    def lookup(self, stage: str, *, hash_files: bool = False) -> Path | None:
        """The stage's cache entry, recording hit or miss (off: no key); a damaged entry is
        removed (and said so): a miss."""
        key = self.key(stage)
        if key is None:
            self.status[stage] = "off"
            return None
        entry = StageCache(self.cache).get(stage, key, hash_files=hash_files, log=self.warn)
        if entry is None and self.shared is not None:
            entry = self._pull(stage, key)
        elif entry is not None and self.shared is not None:
            self._push(stage, key, entry)  # a warm host seeds the store
        self.status[stage] = "hit" if entry is not None else "miss"
        self.note(f"stage cache {stage} {key}: {self.status[stage]}")
        return entry

    def _pull(self, stage: str, key: str) -> Path | None:
        """The entry from the shared store, checked in full (composer/build/cache_shared.py)."""
        assert self.shared is not None
        try:
            why = self.shared.pull(StageCache(self.cache), stage, key)
        except (OSError, ComposerError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        if why is None:
            self.note(f"stage cache {stage} {key}: pulled from the shared store")
            return StageCache(self.cache).get(stage, key)
        if why != "absent":
            self.warn(f"shared stage cache {stage} {key}: not used: {why}")
        return None

    def _push(self, stage: str, key: str, entry: Path) -> None:
        assert self.shared is not None
        try:
            if self.shared.push(StageCache(self.cache), stage, key, entry):
                self.note(f"stage cache {stage} {key}: pushed to the shared store")
        except (OSError, ComposerError) as exc:  # the image is still good: a note
            self.warn(f"shared stage cache {stage} {key}: not pushed: {exc}")

    def building(self, stage: str) -> contextlib.AbstractContextManager[None]:
        """One build at a time looks up, makes and stores the stage's entry."""
        key = self.key(stage)
        if key is None:
            return contextlib.nullcontext()
        return StageCache(self.cache).building(stage, key)

    def store(
        self,
        stage: str,
        make: Callable[[Path], object],
        known: dict[str, str] | None = None,
        *,
        sync: bool = True,
    ) -> None:
        key = self.key(stage)
        if key is not None:
            self.note(f"stage cache {stage} {key}: storing")
            inputs = {"plan": self.plan.name}
            entry = StageCache(self.cache).put(stage, key, make, inputs, known, sync=sync)
            if self.shared is not None:
                self._push(stage, key, entry)

    def touch(self, stage: str) -> None:
        """Keep the stage's entry warm (the least recently used are pruned first)."""
        key = self.key(stage)
        if key is not None:
            StageCache(self.cache).touch(stage, key)


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
        why = "failed: " + (str(exc).strip() or type(exc).__name__)
    with contextlib.suppress(OSError):
        ctx.note(f"build {why}")
    kept = keep_log(ctx.log, output_dir, ctx.plan.name)
    if kept is not None:
        exc.add_note(f"build log: {kept}")
