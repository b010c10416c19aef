"""Content-addressed stage cache: a stage's result is stored under the hash of everything
the stage reads, so a changed input can never reuse a stale result.

Entries are directories ``<cache>/stages/<stage>/<key>/`` holding the stage's files and an
``entry.json``. They are made under a temporary name and renamed into place, so an
interrupted build leaves no half-written entry, and two builds that race for the same key
both end up with a complete one (the loser's copy is dropped).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.errors import ComposerError
from composer.units import parse_size

ENTRY = "entry.json"
MAX_SIZE_ENV = "DPS_COMPOSER_CACHE_MAX"
DEFAULT_MAX_SIZE = 10 * 2**30
# An entry used this recently is never pruned automatically: a concurrent build may be
# copying out of it.
IN_USE_GRACE = 300.0


def key_of(inputs: Any) -> str:
    """A stable hash of JSON-able inputs."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    stage: str
    key: str
    path: Path
    created: float
    last_used: float
    size: int


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


class StageCache:
    def __init__(self, root: Path) -> None:
        self.root = root / "stages"

    def _dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str) -> Path | None:
        """The entry's directory if present and complete; marks it used."""
        path = self._dir(stage, key)
        meta = path / ENTRY
        if not meta.is_file():
            return None
        os.utime(meta)
        return path

    def put(self, stage: str, key: str, make: Callable[[Path], object], inputs: Any = None) -> Path:
        """Run ``make(dir)`` into a fresh temporary directory and publish it as the entry."""
        final = self._dir(stage, key)
        parent = final.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=parent))
        try:
            make(tmp)
            now = time.time()
            # the size is recorded once: pruning after every build must not walk every tree
            size = _tree_size(tmp)
            meta = {"stage": stage, "key": key, "created": now, "size": size, "inputs": inputs}
            (tmp / ENTRY).write_text(json.dumps(meta, indent=2, default=str) + "\n")
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / ENTRY).is_file():  # not a lost race: a real error
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def get_or_make(
        self, stage: str, key: str, make: Callable[[Path], object], inputs: Any = None
    ) -> tuple[Path, bool]:
        """(entry directory, hit?)."""
        hit = self.get(stage, key)
        if hit is not None:
            return hit, True
        return self.put(stage, key, make, inputs), False

    def entries(self) -> Iterator[Entry]:
        if not self.root.is_dir():
            return
        for stage_dir in sorted(self.root.iterdir()):
            if not stage_dir.is_dir():
                continue
            for path in sorted(stage_dir.iterdir()):
                meta = path / ENTRY
                if path.name.startswith(".") or not meta.is_file():
                    continue
                data = json.loads(meta.read_text())
                yield Entry(
                    stage_dir.name,
                    path.name,
                    path,
                    float(data.get("created", 0)),
                    meta.stat().st_mtime,
                    int(data["size"]) if "size" in data else _tree_size(path),
                )

    def prune(
        self,
        *,
        older_than: float | None = None,
        max_size: int | None = None,
        now: float | None = None,
        grace: float = 0.0,
    ) -> list[Entry]:
        """Remove entries unused for ``older_than`` seconds, then the least recently used
        ones until the cache holds at most ``max_size`` bytes, sparing those used in the last
        ``grace`` seconds; also stale temporaries."""
        now = now or time.time()
        removed: list[Entry] = []
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        keep: list[Entry] = []
        for e in entries:
            if older_than is not None and now - e.last_used > older_than:
                removed.append(e)
            else:
                keep.append(e)
        if max_size is not None:
            total = sum(e.size for e in keep)
            for e in list(keep):
                if total <= max_size or now - e.last_used < grace:
                    break
                keep.remove(e)
                total -= e.size
                removed.append(e)
        for e in removed:
            _remove_entry(e.path)
        self._remove_stale_temporaries(now)
        return removed

    def _remove_stale_temporaries(self, now: float, age: float = 24 * 3600) -> None:
        if not self.root.is_dir():
            return
        for tmp in self.root.glob("*/.tmp-*"):
            try:
                if now - tmp.stat().st_mtime > age:
                    shutil.rmtree(tmp, ignore_errors=True)
            except OSError:
                pass


def max_size_from_env() -> int | None:
    """$DPS_COMPOSER_CACHE_MAX ("20 GiB", "500M"; "0" or "unlimited": no cap) or 10 GiB."""
    value = os.environ.get(MAX_SIZE_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_SIZE
    if value.lower() in ("0", "unlimited", "none"):
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ComposerError(
            f"${MAX_SIZE_ENV}={value!r}: {exc}, or 'unlimited' for no cap"
        ) from None


def _remove_entry(path: Path) -> None:
    """Rename first (atomic: a concurrent reader never sees half an entry), then delete."""
    doomed = path.with_name(f".tmp-deleted-{path.name}-{os.getpid()}")
    try:
        os.rename(path, doomed)
    except OSError:
        return
    shutil.rmtree(doomed, ignore_errors=True)
