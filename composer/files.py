"""Writing result files safely: one way, used for every file the composer publishes.

A file is written under a fresh, unpredictable name made with ``O_EXCL`` in the target's own
directory (``tempfile.mkstemp``), flushed to disk, and renamed over the target. ``rename(2)``
replaces a planted symlink instead of following it, and a target that exists but is not a
regular file (a device such as ``/dev/null``, a FIFO, a directory, a symlink) is refused, so
no output ever writes through somebody else's name. A missing directory is a clear error.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from composer.errors import ComposerError


class OutputPathError(ComposerError):
    """An output path that cannot be written safely (names the path and why)."""

    exit_code = 2


def check_target(path: Path) -> None:
    """Refuse a target whose directory is missing or that exists as anything but a regular
    file (symlinks included: a planted link is never written through or silently replaced)."""
    parent = path.parent
    if not parent.is_dir():
        raise OutputPathError(f"{path}: directory {parent} does not exist; create it first")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        kind = _kind(st.st_mode)
        raise OutputPathError(
            f"{path}: exists and is {kind}, not a regular file; refusing to replace it"
        )


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = 0o644) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` for a tool to fill; on success it is made
    ``mode`` (None: the mode ``path`` has now, else 0644), synced and renamed to ``path``;
    on any error or signal it is removed."""
    check_target(path)
    if mode is None:
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        fd = -1
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # a tool may have replaced the file: the mode is ours again
        check_target(path)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str, mode: int | None = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring); ``mode`` is set
    before a byte is written, so a secret is never readable by others even briefly."""
    blob = data.encode() if isinstance(data, str) else data
    with atomic_path(path, mode) as tmp, open(tmp, "wb") as fh:
        fh.write(blob)


def sync_filesystem(path: Path) -> None:
    """Flush everything written to the file system that holds ``path`` (syncfs(2)): one call
    instead of an fsync per file of a tree of thousands."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
