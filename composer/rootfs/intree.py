"""The one way to read and write an image's root tree: nothing ever happens outside it.

A Debian tree has absolute links such as ``var/run -> /run``; a tree made by packages or a
blueprint can have any link at all. The build runs as root on a shared host, so a path in
the tree is never handed to a host file call: :class:`Tree` opens the tree's root once and
resolves every path with :func:`composer.rootfs.resolve.open_in_root` (openat2 with
RESOLVE_IN_ROOT, as a chroot would see the tree), and creates, writes, chmods, chowns,
renames and deletes relative to descriptors it got that way (mkdirat, renameat, unlinkat,
fchmod, fchown; ``O_NOFOLLOW``/``O_EXCL`` where a name is created).

What a path means: links on the way are followed inside the tree (merged-/usr links such as
``/lib -> usr/lib`` keep working; ``/var/run -> /run`` leads to the tree's own /run, never
the host's). :meth:`Tree.write` replaces the last component (a link there is replaced, not
followed); :meth:`Tree.write_through` follows it (Debian's ``/etc/vconsole.conf ->
default/keyboard``). Files are only read when they are regular files: a FIFO or a device node
in the tree is never opened.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from composer.core.errors import ComposerError
from composer.core.files import replace_at
from composer.rootfs.resolve import first_link, open_in_root

Owner = tuple[int, int]
_PATH_DIR = os.O_PATH | os.O_DIRECTORY


class InTreeError(ComposerError):
    """A path in the image tree that cannot be used as asked (names the path and why)."""

    exit_code = 2


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


@contextlib.contextmanager
def _explained(path: str, what: str = "") -> Iterator[None]:
    """OSError -> InTreeError naming the path inside the image. A full disk (ENOSPC,
    EDQUOT) is the host's condition, not the image's: it stays an OSError, which the build
    turns into its disk-full error naming the directory that ran out."""
    try:
        yield
    except InTreeError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        why = {
            errno.ELOOP: "too many or forbidden symbolic links",
            errno.ENOTDIR: "a component is not a directory",
            errno.EISDIR: "it is a directory",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise InTreeError(f"{what}{path} in the image: {why}") from None


class Tree:
    """An image's root tree; paths are /-paths inside it (see the module docstring)."""

    def __init__(self, root: Path, *, kernel: bool | None = None) -> None:
        self.root = root
        self.kernel = kernel  # None: openat2 when the kernel has it; False: the user-space walk
        self.fd = os.open(root, _PATH_DIR | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Tree:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- descriptors -------------------------------------------------------------------------

    def open(
        self, path: str, flags: int, mode: int = 0, *, follow: bool = True,
        no_symlinks: bool = False,
    ) -> int:  # fmt: skip
        """A descriptor for ``path`` resolved inside the tree (raises OSError)."""
        return open_in_root(
            self.fd, path, flags, mode, follow=follow, no_symlinks=no_symlinks, kernel=self.kernel
        )

    @contextlib.contextmanager
    def opened(self, path: str, flags: int, **kw: bool) -> Iterator[int]:
        fd = self.open(path, flags, **kw)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def parent(self, path: str, *, no_symlinks: bool = False) -> Iterator[tuple[int, str]]:
        """(descriptor of the directory holding the last component, its name)."""
        parts = _parts(path)
        if not parts or parts[-1] == "..":
            raise InTreeError(f"{path}: not a name inside the image")
        with (
            _explained("/" + "/".join(parts[:-1])),
            self.opened("/" + "/".join(parts[:-1]), _PATH_DIR, no_symlinks=no_symlinks) as fd,
        ):
            yield fd, parts[-1]

    def first_link(self, path: str) -> str | None:
        return first_link(self.fd, path)

    # -- questions ---------------------------------------------------------------------------

    def stat(self, path: str) -> os.stat_result | None:
        """stat of what ``path`` leads to inside the tree; None if nothing."""
        try:
            with self.opened(path, os.O_PATH) as fd:
                return os.fstat(fd)
        except OSError as exc:  # ELOOP: a link loop; EXDEV: a magic link (/proc/self/…)
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                return None
            raise

    def lstat(self, path: str) -> os.stat_result | None:
        """stat of the last component itself (a link is not followed)."""
        try:
            with self.parent(path) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, InTreeError):
            return None

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def readlink(self, path: str) -> str | None:
        """The target of the link ``path`` (its last component); None if it is no link."""
        try:
            with self.parent(path) as (fd, name):
                return os.readlink(name, dir_fd=fd)
        except (OSError, InTreeError):
            return None

    def is_dir(self, path: str) -> bool:
        st = self.stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def is_file(self, path: str) -> bool:
        st = self.stat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def listdir(self, path: str) -> list[str]:
        """Names in the directory ``path`` leads to; [] if there is none."""
        try:
            with self.opened(path, os.O_RDONLY | os.O_DIRECTORY) as fd:
                return sorted(os.listdir(fd))
        except (FileNotFoundError, NotADirectoryError):
            return []

    # -- reading -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _regular(self, path: str) -> Iterator[int]:
        """A read descriptor of a regular file: anything else (FIFO, device) is never opened
        for reading (an O_PATH descriptor is checked, then reopened)."""
        with _explained(path), self.opened(path, os.O_PATH) as pfd:
            if not stat.S_ISREG(os.fstat(pfd).st_mode):
                raise InTreeError(f"{path} in the image is not a regular file")
            fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def read_bytes(self, path: str) -> bytes:
        with self._regular(path) as fd, os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()

    def read_text(self, path: str, default: str | None = None) -> str:
        """The file's text; ``default`` (when given) if there is no such file."""
        if default is not None and self.stat(path) is None:
            return default
        return self.read_bytes(path).decode(errors="surrogateescape")

    def copy_out(self, path: str, dest: Path) -> None:
        """Copy a regular file of the tree to ``dest`` (a new file outside the tree)."""
        with self._regular(path) as src, open(dest, "xb") as out:
            while chunk := os.read(src, 1 << 20):
                out.write(chunk)

    # -- writing -----------------------------------------------------------------------------

    def makedirs(self, path: str, mode: int = 0o755, *, no_symlinks: bool = False) -> None:
        """Every missing directory of ``path`` (mkdirat in the directory it resolves to)."""
        parts = _parts(path)
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            with _explained(sub):
                try:
                    os.close(self.open(sub, _PATH_DIR, no_symlinks=no_symlinks))
                    continue
                except FileNotFoundError:
                    pass
                with self.parent(sub, no_symlinks=no_symlinks) as (fd, name):
                    try:
                        os.mkdir(name, mode, dir_fd=fd)
                    except FileExistsError:
                        target = os.readlink(name, dir_fd=fd)
                        raise InTreeError(
                            f"{sub} in the image is a symbolic link to {target}, which is "
                            "not in the image"
                        ) from None

    def set_mode(self, path: str, mode: int, owner: Owner | None = None) -> None:
        """chown (when ``owner`` differs) and chmod the directory ``path`` leads to."""
        with _explained(path), self.opened(path, os.O_RDONLY | os.O_DIRECTORY) as fd:
            _own(fd, owner)
            os.fchmod(fd, mode)

    def write(
        self, path: str, data: bytes | str, mode: int = 0o644, owner: Owner | None = None
    ) -> None:
        """Create or replace the file ``path`` (parents made 0755): written under a fresh
        name (O_EXCL) in its directory, owned and moded before the data, then renamed over
        the last component: a link there is replaced, never written through."""
        blob = data.encode() if isinstance(data, str) else data
        parts = _parts(path)
        if len(parts) > 1:
            self.makedirs("/" + "/".join(parts[:-1]))
        with _explained(path), self.parent(path) as (dfd, name):
            st = _lstat_at(dfd, name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise InTreeError(f"{path} is a directory in the image")
            replace_at(dfd, name, blob, mode, owner)

    def write_through(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write the regular file ``path`` leads to (a link is followed inside the tree, a
        missing target created), in place."""
        blob = data.encode() if isinstance(data, str) else data
        st = self.stat(path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise InTreeError(f"{path} in the image is not a regular file")
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOCTTY | os.O_NONBLOCK
        with _explained(path), self.opened(path, flags) as fd:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InTreeError(f"{path} in the image is not a regular file")
            os.ftruncate(fd, 0)
            os.fchmod(fd, mode)
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]

    def symlink(self, path: str, target: str) -> None:
        """``path`` (replacing a file or link there) as a link to ``target``."""
        with _explained(path), self.parent(path) as (fd, name):
            st = _lstat_at(fd, name)
            if st is not None:
                if stat.S_ISDIR(st.st_mode):
                    raise InTreeError(f"{path} is a directory in the image")
                os.unlink(name, dir_fd=fd)
            os.symlink(target, name, dir_fd=fd)

    def unlink(self, path: str) -> None:
        """Remove the entry ``path`` (a link itself, not its target); nothing if missing."""
        try:
            with _explained(path), self.parent(path) as (fd, name):
                os.unlink(name, dir_fd=fd)
        except InTreeError:
            if self.lstat(path) is not None:
                raise

    def rmtree(self, path: str) -> None:
        """Remove ``path`` and everything below it (descriptor-relative, links not followed)."""
        try:
            with _explained(path), self.parent(path) as (fd, name):
                st = _lstat_at(fd, name)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=fd)
                elif st is not None:  # a file or a link: only the entry goes
                    os.unlink(name, dir_fd=fd)
        except InTreeError:
            if self.lstat(path) is not None:
                raise


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _own(fd: int, owner: Owner | None) -> None:
    """fchown, only when the owner differs (an unprivileged run keeps its own files)."""
    if owner is None:
        return
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != owner:
        os.fchown(fd, *owner)
