"""Disk space: what a build needs in its scratch, cache and output directories, checked before
the work starts, and a clear error when a disk fills up anyway.

The estimate comes from the plan and what the stage cache already holds:

- the root tree: its recorded size when the cache has it, else 280 MiB for the base package
  set plus 16 MiB for each further package (measured: base set 274 MB; the example blueprints
  with 2-5 more packages 281-365 MB);
- the disk's allocated size: the tree plus 64 MiB (ESP, file-system metadata); measured 356 MB
  for a 357 MB tree;
- each output format as a share of that (measured qcow2 zstd 0.64; compressed formats 0.7,
  others 1.0); the raw disk is always made in the staging directory first;
- scratch: the tree, the partition images made from it (the tree again) and 100 MiB of UKI
  and ESP, plus half the tree for the packages a root build unpacks;
- cache: the root tree when it is not cached yet, the image entry (every output), the tools
  tree (240 MiB) and the uki-virt repository (80 MiB) when they are missing.

An image the cache already holds needs only its recorded output sizes in the output directory.
Directories on one file system add up. A build refuses to start when a directory's file system
has less free space than that (an estimate: it errs low, so a build it lets through can still
run out, and then fails with the same clear message).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from composer.core.errors import ComposerError, ToolError
from composer.core.units import human_size

MiB = 2**20
BASE_PACKAGES = 7  # systemd, systemd-sysv, udev, dbus, tpm2-tools, the kernel, systemd-repart
BASE_TREE = 280 * MiB
PER_PACKAGE = 16 * MiB
DISK_OVERHEAD = 64 * MiB
UKI_AND_ESP = 100 * MiB
TOOLS_TREE = 240 * MiB
UKI_VIRT_REPO = 80 * MiB
FORMAT_SHARE = {"raw": 1.0, "qcow2": 0.7, "vmdk": 0.7, "raw.zst": 0.7, "raw.xz": 0.7}
DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
FULL = 4 * MiB  # a file system with less free space than this is full (for a silent tool)
ROLES = ("scratch", "cache", "output")
HINT = {
    "scratch": "free space there or set DPS_COMPOSER_WORK_DIR to a roomier directory",
    "cache": "free space there (dps-composer cache prune) or use --cache-dir elsewhere",
    "output": "free space there or choose another -o directory",
}


class DiskFullError(ComposerError):
    """A directory the build writes to has (or had) no room for it."""

    exit_code = 3


@dataclass(frozen=True)
class Places:
    """The directories a build writes to."""

    scratch: Path
    cache: Path
    output: Path

    def of(self, role: str) -> Path:
        path: Path = getattr(self, role)
        return path


@dataclass
class Needs:
    """Bytes a build still needs per directory, and how that was estimated."""

    scratch: int = 0
    cache: int = 0
    output: int = 0
    basis: list[str] = field(default_factory=list)

    def of(self, role: str) -> int:
        value: int = getattr(self, role)
        return value


def tree_estimate(packages: int) -> int:
    return BASE_TREE + PER_PACKAGE * max(0, packages - BASE_PACKAGES)


def outputs_estimate(tree: int, formats: tuple[str, ...], qcow2_compression: str) -> int:
    """The staging directory: the raw disk (always made) and every other format."""
    disk = tree + DISK_OVERHEAD
    total = disk
    for fmt in formats:
        if fmt == "raw":
            continue
        share = FORMAT_SHARE.get(fmt, 1.0)
        if fmt == "qcow2" and qcow2_compression == "none":
            share = 1.0
        total += int(disk * share)
    return total


def estimate(
    packages: int,
    formats: tuple[str, ...],
    qcow2_compression: str,
    *,
    cached_tree: int | None,
    store: bool,
    store_links: bool = False,
) -> Needs:
    """What building the image stages needs (the image is not cached). ``cached_tree``: the
    root tree's recorded size when the cache has it; ``store``: results go into the cache;
    ``store_links``: the cache and the output directory share a file system, so the outputs
    are stored as hard links (composer/build/publish.py) and take no room there."""
    tree = cached_tree if cached_tree is not None else tree_estimate(packages)
    outputs = outputs_estimate(tree, formats, qcow2_compression)
    needs = Needs(
        scratch=2 * tree + UKI_AND_ESP + (0 if cached_tree is not None else tree // 2),
        output=outputs,
        basis=[
            f"root tree {human_size(tree)} ("
            + ("cached" if cached_tree is not None else f"{packages} packages")
            + ")",
            f"outputs {human_size(outputs)} ({', '.join(formats)}, raw disk included)",
        ],
    )
    if store:
        needs.cache = (0 if store_links else outputs) + (0 if cached_tree is not None else tree)
    return needs


def same_file_system(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _groups(places: Places) -> dict[int, list[str]]:
    """Roles by file system (st_dev of each directory)."""
    groups: dict[int, list[str]] = {}
    for role in ROLES:
        groups.setdefault(os.stat(places.of(role)).st_dev, []).append(role)
    return groups


def _named(places: Places, roles: list[str]) -> str:
    names = " and ".join(f"the {r} directory {places.of(r)}" for r in roles)
    return names + (" (one file system)" if len(roles) > 1 else "")


def require(places: Places, needs: Needs) -> None:
    """Refuse to start when a file system has less room than the build needs there."""
    for roles in _groups(places).values():
        wanted = sum(needs.of(r) for r in roles)
        free = free_bytes(places.of(roles[0]))
        if wanted > free:
            parts = ", ".join(f"{r} {human_size(needs.of(r))}" for r in roles if needs.of(r))
            raise DiskFullError(
                f"not enough free space: {_named(places, roles)} has {human_size(free)} "
                f"free; this build needs about {human_size(wanted)} there ({parts}; estimated "
                f"from the plan: {'; '.join(needs.basis)}); {HINT[roles[0]]}"
            )


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC or EDQUOT from the composer itself or from a tool's error output."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, ToolError):
        return any(text in exc.stderr_tail for text in DISK_FULL_TEXT)
    return False


def _full_now(places: Places) -> list[str]:
    """The roles on a file system that is full right now (none: [])."""
    for roles in _groups(places).values():
        if free_bytes(places.of(roles[0])) < FULL:
            return roles
    return []


def _full_roles(places: Places, exc: BaseException) -> list[str]:
    """The roles on the file system that ran out: the one the failing file is on, else the
    one with the least free space."""
    groups = _groups(places)
    name = getattr(exc, "filename", None)
    if isinstance(name, str | os.PathLike):
        with contextlib.suppress(OSError):
            dev = os.stat(Path(os.fspath(name)).parent).st_dev
            if dev in groups:
                return groups[dev]
    return min(groups.values(), key=lambda roles: free_bytes(places.of(roles[0])))


@contextlib.contextmanager
def disk_full_errors(places: Places, needs: Callable[[], Needs]) -> Iterator[None]:
    """Turn running out of space in a build's directories into one clear DiskFullError that
    names the directory and the space the build needs there."""
    try:
        yield
    except (OSError, ToolError) as exc:
        # a tool that fails without saying why (sfdisk does) while a disk is full: that is why
        if not is_disk_full(exc) and not (isinstance(exc, ToolError) and _full_now(places)):
            raise
        roles = _full_roles(places, exc)
        wanted = sum(needs().of(r) for r in roles)
        free = free_bytes(places.of(roles[0]))
        need = f"; this build needs about {human_size(wanted)} there" if wanted else ""
        raise DiskFullError(
            f"no space left on device in {_named(places, roles)} ({human_size(free)} free now"
            f"{need}); nothing was published and the build's temporaries were removed; "
            f"{HINT[roles[0]]}\n  cause: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    """The line that says what ran out (a tool's error output has it somewhere)."""
    lines = str(exc).strip().splitlines()
    said = [ln.strip() for ln in lines if any(text in ln for text in DISK_FULL_TEXT)]
    if isinstance(exc, ToolError) and said:
        return f"{exc.tool}: {said[-1]}"
    return lines[0] if lines else type(exc).__name__
