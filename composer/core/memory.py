"""A build's scratch directory in memory when the machine can spare it.

A build creates, copies and removes a root tree of about ten thousand files in its scratch
directory. On a disk file system that is metadata work the journal (and, with ``discard``, the
discards of the previous build's freed blocks) makes slow and erratic; on a tmpfs it is not.
Measured on a two-core build host (ext4 with online discard): the cached root tree copied in
1-8 s to /var/tmp, 0.8-1.1 s to /dev/shm; a rebuild after a host name change 12.5 s against
5.7 s (docs/benchmarks.md).

So a build whose scratch directory is not chosen (``DPS_COMPOSER_WORK_DIR`` unset) works in
``/dev/shm`` when that is a writable tmpfs that allows executables (the root tree's maintainer
scripts run in it) with room for twice the build's estimated scratch, and the machine's
available memory (``MemAvailable``, proc(5)) holds that and :data:`RESERVE` more for
everything else (VMs, other builds). Otherwise it works in /var/tmp, as everything else does.
"""

from __future__ import annotations

import os
from pathlib import Path

from composer.core.units import human_size

GiB = 2**30
MEMORY_DIR = Path("/dev/shm")
RESERVE = 4 * GiB  # available memory left for everything else while a build runs
MARGIN = 2  # the estimate errs low: room for twice the build's estimated scratch


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def mount_options(where: Path, mounts: str) -> tuple[str, set[str]] | None:
    """(file-system type, options) of the mount at ``where`` in /proc/self/mounts text (the
    last one: mounts stack), or None when nothing is mounted there."""
    found = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == str(where):
            found = fields[2], set(fields[3].split(","))
    return found


def mem_available(meminfo: str) -> int | None:
    """``MemAvailable`` of /proc/meminfo text, in bytes."""
    for line in meminfo.splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            number = value.split()
            if number and number[0].isdigit():
                return int(number[0]) * 1024
    return None


def refusal(need: int, *, free: int, mounts: str, meminfo: str, where: Path = MEMORY_DIR) -> str:
    """Why scratch of ``need`` bytes does not go to ``where`` ("" when it does)."""
    mount = mount_options(where, mounts)
    if mount is None or mount[0] != "tmpfs":
        return f"{where} is not a tmpfs"
    if "ro" in mount[1] or "noexec" in mount[1]:
        return f"{where} is mounted {'read-only' if 'ro' in mount[1] else 'noexec'}"
    want = MARGIN * need
    if free < want:
        return f"{where} has {human_size(free)} free, less than {human_size(want)}"
    available = mem_available(meminfo)
    if available is None or available < want + RESERVE:
        have = "unknown" if available is None else human_size(available)
        return f"available memory {have}, less than {human_size(want + RESERVE)}"
    return ""


def why_not_in_memory(need: int, where: Path = MEMORY_DIR) -> str:
    """Why this machine cannot hold a build's scratch of ``need`` bytes in ``where`` now (""
    when it can)."""
    try:
        st = os.statvfs(where)
    except OSError:
        return f"{where} is missing"
    return refusal(
        need,
        free=st.f_bavail * st.f_frsize,
        mounts=_read("/proc/self/mounts"),
        meminfo=_read("/proc/meminfo"),
        where=where,
    )
