"""Content-addressed stage cache: a stage's result is stored under the hash of everything
the stage reads, so a changed input can never reuse a stale result.

Entries are directories ``<cache>/stages/<stage>/<key>/`` holding the stage's files and an
``entry.json`` that records what they must be (composer/build/cache_record.py). An entry is made in
a locked temporary directory (composer/core/workdir.py), synced to disk, recorded, and renamed
into place, so a killed build or a lost power supply leaves no half-written entry, only a
temporary that the next build or ``cache prune`` removes. An entry whose content does not
match its record (truncated, emptied, changed, missing files, an empty or invalid record) is
a miss: it is removed and the stage built again. An entry every file of which is hashed
whenever it is used (the whole image's: composer/build/publish.py ``reuse_image``) is not
synced first: after a lost power supply a torn one is such a miss; forcing its gigabytes to disk
would only make the build wait for the disk. One build at a time makes an entry (a lock
per key): a second build of the same key waits and then takes the first one's result.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.build import cache_record
from composer.build.cache_record import ENTRY, RECORD_VERSION
from composer.core import locks, paths
from composer.core.errors import ComposerError
from composer.core.files import atomic_write, fsync_dir, sync_tree
from composer.core.units import parse_size
from composer.core.workdir import owned_dir, sweep, unowned

__all__ = ["ENTRY", "IN_USE_GRACE", "Entry", "StageCache"]

DEFAULT_MAX_SIZE = 10 * 2**30
# An entry used this recently is never pruned automatically: a concurrent build may be
# copying out of it.
IN_USE_GRACE = 300.0
TEMPORARY = ".tmp-"  # every temporary in the cache directory starts so (composer/core/workdir.py)


@dataclass(frozen=True)
class Entry:
    stage: str
    key: str
    path: Path
    created: float
    last_used: float
    size: int
    problem: str = ""  # why its record cannot be read: such an entry is always removed


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _temporary_places(cache: Path) -> list[Path]:
    """Where the cache directory's temporaries are made (stage entries being made or removed,
    tools trees, uki-virt builds, downloads, archive syncs, keys): two levels deep."""
    places = [cache]
    with contextlib.suppress(OSError):
        for child in cache.iterdir():
            if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
                places.append(child)
                places += [
                    d
                    for d in child.iterdir()
                    if d.is_dir() and not d.is_symlink() and not d.name.startswith(".")
                ]
    return places


def sweep_temporaries(cache: Path) -> list[Path]:
    """Remove the temporaries of killed commands anywhere in the cache directory."""
    removed = []
    for place in _temporary_places(cache):
        removed += sweep(place, f"{TEMPORARY}*")
    return removed


def leftover_temporaries(cache: Path) -> list[Path]:
    """The temporaries of killed commands in the cache directory (nobody holds their lock)."""
    found = []
    for place in _temporary_places(cache):
        found += unowned(place, f"{TEMPORARY}*")
    return found


class StageCache:
    def __init__(self, root: Path) -> None:
        self.cache = root
        self.root = root / "stages"

    def _dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    @contextlib.contextmanager
    def building(self, stage: str, key: str) -> Iterator[None]:
        """Hold the key's lock: one build at a time looks up, makes and stores this entry."""
        parent = self.root / stage
        parent.mkdir(parents=True, exist_ok=True)
        with locks.held(parent / f".{key}.lock"):
            yield

    def get(
        self,
        stage: str,
        key: str,
        *,
        hash_files: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> Path | None:
        """The entry's directory if present and intact (see composer/build/cache_record.py); marks
        it used. A damaged entry is removed (and said so to ``log``): a miss."""
        path = self._dir(stage, key)
        if not path.is_dir():
            return None
        problem = cache_record.check(path, hash_files=hash_files)
        if problem is not None:
            self.discard(path)
            if log is not None:
                log(f"stage cache {stage} {key}: damaged entry removed: {problem}")
            return None
        with contextlib.suppress(OSError):
            os.utime(path / ENTRY)
        return path

    def touch(self, stage: str, key: str) -> None:
        """Mark an entry used (it stays warm for the least-recently-used pruning)."""
        with contextlib.suppress(OSError):
            os.utime(self._dir(stage, key) / ENTRY)

    def recorded_size(self, entry: Path) -> int | None:
        """The bytes an entry takes, as recorded when it was made."""
        found = _entry(entry.parent.name, entry)
        return None if found.problem else found.size

    def put(
        self,
        stage: str,
        key: str,
        make: Callable[[Path], object],
        inputs: Any = None,
        known: Mapping[str, str] | None = None,
        *,
        sync: bool = True,
    ) -> Path:
        """Run ``make(dir)`` into a fresh temporary directory and publish it as the entry.
        ``known``: sha256 of files ``make`` wrote that the caller has already hashed;
        ``sync=False`` only for an entry whose files are hashed whenever it is used."""
        final = self._dir(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        with owned_dir(final.parent, f"{TEMPORARY}{key}-") as tmp:
            make(tmp)
            content = cache_record.describe(tmp, known)
            if sync:
                sync_tree(tmp)  # every byte on disk before the record says it is there
            meta = {
                "version": RECORD_VERSION,
                "stage": stage,
                "key": key,
                "created": time.time(),
                # recorded once: pruning after every build must not walk every tree
                "size": _tree_size(tmp),
                "inputs": inputs,
                "content": content,
            }
            atomic_write(tmp / ENTRY, json.dumps(meta, indent=2, default=str) + "\n")
            self._publish(tmp, final)
        return final

    def adopt(self, tmp: Path, stage: str, key: str) -> Path:
        """Publish a complete, checked entry made elsewhere (a shared store's) as ours."""
        final = self._dir(stage, key)
        self._publish(tmp, final)
        return final

    def _publish(self, tmp: Path, final: Path) -> None:
        try:
            os.rename(tmp, final)
        except OSError:
            if cache_record.check(final) is None:  # a concurrent build stored it first
                return
            self.discard(final)  # damaged: ours replaces it
            os.rename(tmp, final)
        fsync_dir(final.parent)

    def get_or_make(
        self, stage: str, key: str, make: Callable[[Path], object], inputs: Any = None
    ) -> tuple[Path, bool]:
        """(entry directory, hit?)."""
        with self.building(stage, key):
            hit = self.get(stage, key)
            if hit is not None:
                return hit, True
            return self.put(stage, key, make, inputs), False

    def discard(self, path: Path) -> None:
        """Remove an entry: renamed away first (atomic: a concurrent reader never sees half
        an entry) into a locked temporary, so a kill midway leaves a sweepable leftover."""
        with (
            owned_dir(path.parent, f"{TEMPORARY}deleted-") as doomed,
            contextlib.suppress(FileNotFoundError),
        ):
            os.rename(path, doomed / "entry")

    def entries(self) -> Iterator[Entry]:
        """Every entry; one whose record cannot be read has ``problem`` set."""
        if not self.root.is_dir():
            return
        for stage_dir in sorted(self.root.iterdir()):
            if not stage_dir.is_dir() or stage_dir.name.startswith("."):
                continue
            for path in sorted(stage_dir.iterdir()):
                if path.name.startswith(".") or not path.is_dir():
                    continue
                yield _entry(stage_dir.name, path)

    def prune(
        self,
        *,
        older_than: float | None = None,
        max_size: int | None = None,
        now: float | None = None,
        grace: float = 0.0,
    ) -> list[Entry]:
        """Remove entries whose record cannot be read, entries unused for ``older_than``
        seconds, then the least recently used ones until the cache holds at most
        ``max_size`` bytes, sparing those used in the last ``grace`` seconds; also the
        temporaries of killed commands."""
        now = now or time.time()
        removed: list[Entry] = []
        keep: list[Entry] = []
        for e in sorted(self.entries(), key=lambda e: e.last_used):
            too_old = older_than is not None and now - e.last_used > older_than
            (removed if e.problem or too_old else keep).append(e)
        if max_size is not None:
            total = sum(e.size for e in keep)
            for e in list(keep):
                if total <= max_size or now - e.last_used < grace:
                    break
                keep.remove(e)
                total -= e.size
                removed.append(e)
        for e in removed:
            self.discard(e.path)
        self._remove_idle_key_locks()
        sweep_temporaries(self.cache)
        return removed

    def _remove_idle_key_locks(self) -> None:
        for lock in self.root.glob("*/.*.lock"):
            if lock.name.startswith(TEMPORARY):
                continue
            fd = locks.acquire(lock, wait=False, create=False)
            if fd is not None:
                lock.unlink(missing_ok=True)
                locks.release(fd)


def _entry(stage: str, path: Path) -> Entry:
    record, problem = cache_record.read_record(path)
    try:
        last_used = (path / ENTRY).stat().st_mtime
    except OSError:
        last_used = path.stat().st_mtime
    if record is None:
        return Entry(stage, path.name, path, 0.0, last_used, _tree_size(path), problem)
    try:
        created = float(record.get("created", 0))
        size = int(record["size"]) if "size" in record else _tree_size(path)
    except (TypeError, ValueError):
        return Entry(stage, path.name, path, 0.0, last_used, _tree_size(path), "bad record")
    return Entry(stage, path.name, path, created, last_used, size)


def max_size_from_env() -> int | None:
    """$DPS_COMPOSER_CACHE_MAX ("20 GiB", "500M"; "0" or "unlimited": no cap) or 10 GiB."""
    value = paths.cache_max()
    if not value:
        return DEFAULT_MAX_SIZE
    if value.lower() in ("0", "unlimited", "none"):
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ComposerError(
            f"${paths.CACHE_MAX_ENV}={value!r}: {exc}, or 'unlimited' for no cap"
        ) from None
