"""Open a path inside a directory as if that directory were ``/`` (as chroot(2) would),
enforced by the kernel: ``openat2(2)`` with ``RESOLVE_IN_ROOT``.

Absolute symbolic links and ``..`` are resolved against the tree's root and can never
climb out of it; magic links (``/proc/self/…``) are refused (``RESOLVE_NO_MAGICLINKS``).
Kernels without openat2 (before Linux 5.6: ENOSYS) get the same resolution done component by
component in user space: every step is an ``O_PATH|O_NOFOLLOW`` descriptor relative to the
previous one, links are read with readlinkat(2) and followed from the root (absolute) or the
current directory (relative), ``..`` never goes above the root, and at most 40 links are
followed (MAXSYMLINKS, path_resolution(7)). Both return a descriptor; whatever happens next
happens relative to it, never through a path name.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat

# <linux/openat2.h>
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
# openat2 is 437 on every architecture with the unified syscall table (x86_64, aarch64, …)
SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(platform.machine())
MAX_LINKS = 40
_RETRIES = 16  # openat2 answers EAGAIN when a rename raced a ".." lookup


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_kernel_ok: bool | None = None if SYS_OPENAT2 is not None else False


def kernel_resolution() -> bool:
    """Whether this kernel has openat2 (probed once)."""
    global _kernel_ok
    if _kernel_ok is None:
        root = os.open("/", os.O_PATH | os.O_CLOEXEC)
        try:
            os.close(_openat2(root, "/", os.O_PATH, 0, RESOLVE_IN_ROOT))
            _kernel_ok = True
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter
                raise
            _kernel_ok = False
        finally:
            os.close(root)
    return _kernel_ok


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    raw = os.fsencode(path)
    for _ in range(_RETRIES):
        fd = _libc.syscall(
            ctypes.c_long(SYS_OPENAT2 or -1),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(raw),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def open_in_root(
    root_fd: int,
    path: str,
    flags: int,
    mode: int = 0,
    *,
    follow: bool = True,
    no_symlinks: bool = False,
    kernel: bool | None = None,
) -> int:
    """A descriptor for ``path`` inside the tree whose root is ``root_fd``. ``follow``: a
    link as the last component is followed (inside the tree); ``no_symlinks``: any link on
    the way is an error (ELOOP). ``kernel``: force (True) or avoid (False) openat2."""
    use_kernel = kernel_resolution() if kernel is None else kernel
    if not follow:
        flags |= os.O_NOFOLLOW
    if use_kernel:
        resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
        if no_symlinks:
            resolve |= RESOLVE_NO_SYMLINKS
        return _openat2(root_fd, path or "/", flags, mode, resolve)
    return walk_open(root_fd, path, flags, mode, follow=follow, no_symlinks=no_symlinks)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def walk_open(
    root_fd: int, path: str, flags: int, mode: int = 0, *, follow: bool = True,
    no_symlinks: bool = False,
) -> int:  # fmt: skip
    """The user-space twin of ``openat2(RESOLVE_IN_ROOT)`` (see the module docstring)."""
    todo = _parts(path)
    stack = [os.dup(root_fd)]  # descriptors from the root down to the current directory
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            last = not todo
            try:
                st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:  # O_CREAT makes it; otherwise this raises ENOENT
                    return os.open(
                        name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=stack[-1]
                    )
                raise
            if stat.S_ISLNK(st.st_mode) and (not last or follow or no_symlinks):
                if no_symlinks:
                    raise OSError(errno.ELOOP, "a symbolic link on the way", name)
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo = _parts(target) + todo
                continue
            if last:
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=stack[-1])
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name)
            flags_dir = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            stack.append(os.open(name, flags_dir, dir_fd=stack[-1]))
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=stack[-1])  # the root itself
    finally:
        for fd in stack:
            os.close(fd)


def first_link(root_fd: int, path: str) -> str | None:
    """The first component of ``path`` (as a /-path in the tree) that is a symbolic link,
    or None; for naming what a mount point crosses."""
    fd = os.dup(root_fd)
    try:
        done: list[str] = []
        for name in _parts(path):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                return None
            done.append(name)
            if stat.S_ISLNK(st.st_mode):
                return "/" + "/".join(done) + " -> " + os.readlink(name, dir_fd=fd)
            if not stat.S_ISDIR(st.st_mode):
                return None
            nxt = os.open(
                name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
            os.close(fd)
            fd = nxt
        return None
    finally:
        os.close(fd)
