"""File locks (flock(2)) that survive their own clean-up: one way for every lock the composer
takes (scratch and staging directories, cache temporaries, one build per cache key, the apt
index, an output directory while a build publishes into it).

A lock belongs to an open file description, so the kernel drops it when its holder dies,
however it dies (SIGKILL included); nothing ever has to be unlocked by hand. Lock files may be
removed by whoever holds them (a sweeper removing a dead build's leftovers): a waiter that
then gets the lock holds it on a file that has no name any more, so every acquisition checks
that the path still names the file it locked, and starts again when not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from composer.core.lifetime import stop_scope

POLL = 0.1  # seconds between tries of a thread that can be stopped (lifetime.StopScope)


def _names_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd`` (it was not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def acquire(
    path: Path, *, shared: bool = False, wait: bool = True, create: bool = True
) -> int | None:
    """Lock ``path`` (made if missing and ``create``); the open descriptor, or None when
    ``wait`` is False and somebody else holds it (or, without ``create``, it is gone)."""
    op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    access = os.O_RDONLY if shared and not create else os.O_RDWR
    flags = access | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            _flock(fd, op, wait)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _names_file(fd, path):
            return fd
        os.close(fd)  # removed while we waited: lock the file that has the name now
        if not create:
            return None


def _flock(fd: int, op: int, wait: bool) -> None:
    """flock(2); a thread that another can stop (lifetime.StopScope) waits in short tries,
    as no signal interrupts its wait: it raises Stopped when stopped."""
    scope = stop_scope()
    if not wait or scope is None:
        fcntl.flock(fd, op | (0 if wait else fcntl.LOCK_NB))
        return
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            scope.check()
            time.sleep(POLL)


@contextlib.contextmanager
def held(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock on ``path`` (waiting for it) for the ``with`` block."""
    fd = acquire(path, shared=shared)
    assert fd is not None  # waiting never gives up
    try:
        yield
    finally:
        os.close(fd)


def release(fd: int) -> None:
    os.close(fd)
