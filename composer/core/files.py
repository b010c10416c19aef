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
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from composer.core.errors import ComposerError


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
        kind = file_kind(st.st_mode)
        raise OutputPathError(
            f"{path}: exists and is {kind}, not a regular file; refusing to replace it"
        )


def file_kind(mode: int) -> str:
    """'a FIFO', 'a directory', … for messages about a path that is not a regular file."""
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


def exposed_private_file(path: Path) -> str | None:
    """Why ``path`` is no private key file (a regular file of ours that nobody else may read
    or write), as "mode 0644, owner uid 1000"; None when it is one."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o077 and st.st_uid == os.geteuid():
        return None
    kind = "" if stat.S_ISREG(st.st_mode) else f"{file_kind(st.st_mode)}, "
    return f"{kind}mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}"


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = 0o644, *, replace: bool = True) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` for a tool to fill; on success it is made
    ``mode`` (None: the mode ``path`` has now, else 0644), synced and renamed to ``path``;
    on any error or signal it is removed. ``replace=False``: ``path`` is never replaced, the
    temporary is linked to it (link(2) fails on any existing name, a dangling link too)."""
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
        _publish(tmp, path, replace)
        fsync_dir(path.parent)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise OutputPathError(f"{path}: exists; refusing to overwrite it") from None


def atomic_write(
    path: Path, data: bytes | str, mode: int | None = 0o644, *, replace: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring); ``mode`` is set
    before a byte is written, so a secret is never readable by others even briefly.
    ``replace=False``: a new file only (:func:`atomic_path`)."""
    blob = data.encode() if isinstance(data, str) else data
    with atomic_path(path, mode, replace=replace) as tmp, open(tmp, "wb") as fh:
        fh.write(blob)


def write_json(path: Path, data: object) -> None:
    """``data`` as indented JSON (keys in their order), written atomically."""
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def check_dir_target(path: Path) -> None:
    """Refuse an output directory that exists as anything but a directory (a link too)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise OutputPathError(
            f"{path}: exists and is {file_kind(st.st_mode)}, not a directory; refusing to "
            "write into it"
        )


def _open_dir(path: Path) -> int:
    """A descriptor of the directory ``path``, made (0755) if missing; a link or anything
    but a directory there is refused, never followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        check_dir_target(path)
        raise


def _write_at(dir_fd: int, name: str, blob: bytes, mode: int, where: Path) -> None:
    """``name`` in the directory ``dir_fd``: a fresh O_EXCL temporary renamed over it; an
    existing entry that is not a regular file is refused."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputPathError(
            f"{where / name}: exists and is {file_kind(st.st_mode)}, not a regular file; "
            "refusing to replace it"
        )
    replace_at(dir_fd, name, blob, mode)


def replace_at(
    dir_fd: int, name: str, blob: bytes, mode: int, owner: tuple[int, int] | None = None
) -> None:
    """Create or replace ``name`` in the directory ``dir_fd``: a fresh temporary (O_EXCL,
    O_NOFOLLOW) owned and moded before a byte is written, then renamed over ``name`` (a link
    there is replaced, never followed). ``owner`` is set only when it differs."""
    tmp = f".{name[:200]}.{os.urandom(8).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            st = os.fstat(fh.fileno())
            if owner is not None and (st.st_uid, st.st_gid) != owner:
                os.fchown(fh.fileno(), *owner)
            os.fchmod(fh.fileno(), mode)
            fh.write(blob)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def copy_into_dir(
    src: Path,
    dest: Path,
    *,
    skip: tuple[str, ...] = (),
    extra: Mapping[str, str | bytes] | None = None,
) -> None:
    """Copy the regular files below ``src`` into the directory ``dest`` (made if missing),
    plus ``extra`` (name -> text). ``dest`` and every sub-directory are opened without
    following links and every file is written as :func:`_write_at` does, so a link planted
    in ``dest`` (or as ``dest``) is refused, never written through. Names ending in one of
    ``skip`` are left out, as are sockets, FIFOs and links in ``src``."""
    fd = _open_dir(dest)
    try:
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            if entry.name.endswith(skip):
                continue
            if entry.is_dir(follow_symlinks=False):
                copy_into_dir(Path(entry.path), dest / entry.name, skip=skip)
            elif entry.is_file(follow_symlinks=False):
                mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                with open(entry.path, "rb") as fh:
                    _write_at(fd, entry.name, fh.read(), mode, dest)
        for name, text in (extra or {}).items():
            _write_at(fd, name, text.encode() if isinstance(text, str) else text, 0o644, dest)
    finally:
        os.close(fd)


def plain_name(name: str) -> bool:
    """Whether ``name`` names a file inside one directory (no separator, not ``.`` or ``..``,
    no NUL): a name read from a manifest or a cache record never leads out of its directory."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def next_data(fd: int, pos: int, size: int) -> int:
    """Where the next data (not a hole) of the open file ``fd`` starts at or after ``pos``;
    ``size`` when only a hole is left (lseek(2) SEEK_DATA fails with ENXIO there)."""
    try:
        return os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        return size


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


FSYNC_AT_MOST = 256  # files: above this, one syncfs(2) costs less than an fsync each


def sync_tree(path: Path) -> None:
    """Everything below ``path`` on disk. A few files (an image's outputs) are fsynced one by
    one: syncfs(2) also waits for the dirty data of every other writer on the file system (the
    other builds of a shared build host). A large tree (a root file system) gets one syncfs."""
    found: list[Path] = []
    for top, dirs, files in os.walk(path):
        found += [Path(top, name) for name in (*files, *dirs)]
        if len(found) > FSYNC_AT_MOST:
            sync_filesystem(path)
            return
    for item in [*found, path]:
        if not stat.S_ISREG(mode := item.lstat().st_mode) and not stat.S_ISDIR(mode):
            continue  # a link, a device node, a FIFO: no data of its own to flush
        fsync_file(item)


def fsync_file(path: Path) -> None:
    """``path``'s data and metadata on disk (a file or directory, never a link followed)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def regenerate(argv: list[str], default: Path, text: str) -> int:
    """``python -m …`` of a generated, committed file (a schema, the man page): write ``text``
    to the path given, else to ``default``."""
    target = Path(argv[0]) if argv else default
    atomic_write(target, text)
    print(f"wrote {target}")
    return 0
