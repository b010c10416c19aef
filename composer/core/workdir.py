"""Temporary directories that never outlive their owner for long: one way for every temporary
a command makes (a build's scratch directory, its staging directory in the output directory,
tools-tree, uki-virt and cache temporaries, raw views of ``inspect``, boot folders).

A command removes its directories when it ends, also on errors, Ctrl-C, SIGTERM and SIGHUP;
one killed with SIGKILL (or a machine that lost power) cannot. So each directory ``D`` has a
lock file ``D.lock`` beside it that its owner holds for as long as it uses ``D``, and the next
command that makes a temporary in the same place (and ``cache prune``) removes every ``D``
whose lock nobody holds.

The lock exists and is held *before* its directory is made: a sweeper that finds a lock file
nobody holds can only ever be racing an owner that has not made its directory yet, and that
owner, finding its lock file gone once it gets the lock, starts again under a new name. A
sweeper therefore never deletes a directory whose owner is starting or running. Mounts are
never left in these directories: commands in a tree run in private mount namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from composer.core import locks, memory, paths
from composer.core.files import fsync_dir

PREFIX = "dps-composer-"
LOCK_SUFFIX = ".lock"


def work_parent(override: Path | None = None) -> Path:
    """Where scratch directories go: ``override``, $DPS_COMPOSER_WORK_DIR or /var/tmp
    (composer/core/paths.py)."""
    return paths.work_dir(override)


def build_parent(need: int, override: Path | None = None) -> tuple[Path, str]:
    """Where a build's scratch directory goes, and why: ``override`` or
    $DPS_COMPOSER_WORK_DIR when given; else memory (/dev/shm) when the machine can spare
    twice the build's estimated scratch ``need`` (composer/core/memory.py); else /var/tmp.
    The scratch that killed builds left in memory is removed here whatever is chosen: it
    holds memory until then."""
    if override is not None or os.environ.get(paths.WORK_DIR_ENV):
        return paths.work_dir(override), f"set by {paths.WORK_DIR_ENV}"
    if memory.MEMORY_DIR.is_dir():
        remove_stale(memory.MEMORY_DIR)
    refused = memory.why_not_in_memory(need, memory.MEMORY_DIR)
    if not refused:
        return memory.MEMORY_DIR, "in memory"
    return paths.work_dir(), f"not in memory: {refused}"


def _lock_of(directory: Path) -> Path:
    return directory.with_name(directory.name + LOCK_SUFFIX)


def _claim(parent: Path, prefix: str) -> tuple[Path, int]:
    """A fresh directory ``parent/<prefix><random>`` and the held lock that guards it."""
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=parent)
        os.close(fd)  # made with O_EXCL: the name is ours; now take the lock on it
        lock = Path(name)
        held = locks.acquire(lock, create=False)
        if held is None:  # a sweeper took it for a dead build's: try another name
            continue
        directory = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # a remnant a sweeper could not remove: leave it to them
            locks.release(held)
            continue
        except BaseException:
            lock.unlink(missing_ok=True)
            locks.release(held)
            raise
        return directory, held


@contextlib.contextmanager
def owned_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory in ``parent`` named ``<prefix><random>``, held for the ``with`` block
    and removed after it (what is moved out of it before the end stays where it went)."""
    parent.mkdir(parents=True, exist_ok=True)
    directory, held = _claim(parent, prefix)
    try:
        yield directory
    finally:
        try:
            shutil.rmtree(directory, ignore_errors=True)
            if not directory.exists():
                _lock_of(directory).unlink(missing_ok=True)
        finally:
            locks.release(held)


def sweep(parent: Path, pattern: str) -> list[Path]:
    """Remove every directory ``parent/<pattern>`` whose owner is gone (its lock file nobody
    holds), and that lock file; returns what was removed."""
    removed = []
    try:
        candidates = sorted(parent.glob(pattern + LOCK_SUFFIX))
    except OSError:
        return []
    for lock in candidates:
        held = locks.acquire(lock, wait=False, create=False)
        if held is None:  # its owner runs (or another sweeper is at it)
            continue
        try:
            directory = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
            if directory.is_dir() and not directory.is_symlink():
                shutil.rmtree(directory, ignore_errors=True)
            if not os.path.lexists(directory):
                lock.unlink(missing_ok=True)
                removed.append(directory)
        finally:
            locks.release(held)
    return removed


def unowned(parent: Path, pattern: str) -> list[Path]:
    """The directories ``parent/<pattern>`` (or their lock files) whose owner is gone."""
    found = []
    for lock in sorted(parent.glob(pattern + LOCK_SUFFIX)):
        held = locks.acquire(lock, wait=False, create=False)
        if held is not None:
            locks.release(held)
            found.append(lock.with_name(lock.name.removesuffix(LOCK_SUFFIX)))
    return found


@contextlib.contextmanager
def scratch_dir(name: str, parent: Path) -> Iterator[Path]:
    """A command's scratch directory ``parent/dps-composer-<name>-<random>``; the scratch
    directories of commands that were killed are removed first."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    with owned_dir(parent, f"{PREFIX}{name}-") as path:
        yield path


def remove_stale(parent: Path) -> list[Path]:
    """Remove the scratch directories of commands that no longer run; returns them."""
    return sweep(parent, f"{PREFIX}*")


def made_once(directory: Path, make: Callable[[Path], object]) -> bool:
    """Make ``directory`` whole once, also among commands racing for it: ``make`` fills a new
    path in a locked temporary beside it, which is then renamed into place, so nobody ever sees
    half of it; a command that loses the race keeps the winner's. Whether this call made it.
    (A killed run's temporary is swept by the next.)"""
    directory.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-{directory.name}-"
    sweep(directory.parent, prefix + "*")
    with owned_dir(directory.parent, prefix) as tmp:
        make(tmp / directory.name)
        try:
            os.rename(tmp / directory.name, directory)
        except OSError:
            if not directory.is_dir():
                raise
            return False
        fsync_dir(directory.parent)  # the rename survives a crash: no keys made twice
    return True
