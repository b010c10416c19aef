"""Read files from file systems the offline readers cannot (xfs, btrfs, ...) with libguestfs:
a small appliance VM mounts the partition read-only. Slower (~20 s under TCG), so only the
fallback. LIBGUESTFS_BACKEND=direct and force_tcg unless the environment says otherwise (KVM
is unusable on hosts like this one).

Every handle's temporary directory (the appliance's overlays and scratch disks) is a scratch
directory of the composer (composer/core/workdir.py): removed when the handle closes, and by
the next command when this one was killed (libguestfs's own /tmp/libguestfsXXXXXX would stay
behind); its recovery process stops the appliance when the composer dies. The socket
directory of a root user is always /tmp/libguestfsXXXXXX (libguestfs gives no setting): a
killed appliance leaves that one, with its two sockets."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from composer.core import paths
from composer.core.errors import HostError
from composer.core.workdir import scratch_dir
from composer.toolchain.boottools import BootToolsError, find_boot_tools, host_arch


@contextlib.contextmanager
def handle() -> Iterator[Any]:
    """A libguestfs handle with its temporary directory in a scratch directory; shut down and closed
    when the block ends, however it ends."""
    with scratch_dir("guestfs", paths.work_dir()) as scratch:
        env = {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}
        g = _new_handle()
        try:
            g.parse_environment_list([f"{k}={v}" for k, v in {**env, **os.environ}.items()])
            g.set_tmpdir(str(scratch))  # the appliance cache stays where it was (set_cachedir)
            if (hv := hypervisor()) is not None:
                g.set_hv(str(hv))
            yield g
        finally:
            with contextlib.suppress(RuntimeError):
                g.shutdown()
            g.close()


def hypervisor() -> Path | None:
    """The boot tools tree's QEMU when a boot has made that tree (composer/toolchain/boottools.py:
    under TCG, QEMU 10 launches the appliance about 3 s sooner than bookworm's 7.2 and inspects
    faster), unless LIBGUESTFS_HV names one or DPS_COMPOSER_BOOT_TOOLS=host; None: libguestfs's
    default (the host's). Never makes the tree: a launch does not wait minutes for it."""
    if os.environ.get("LIBGUESTFS_HV") or paths.boot_tools() == "host":
        return None
    try:
        tools = find_boot_tools(paths.cache_dir(), host_arch())
    except BootToolsError:  # a host with no tree for its architecture
        return None
    hv = tools.guestfs_hv() if tools is not None else None
    return hv if hv is not None and hv.is_file() else None


def hypervisor_note() -> str:
    """Which QEMU a handle made now starts, for what a command says before a launch."""
    return "the host's QEMU" if hypervisor() is None else "the boot tools tree's QEMU"


def _new_handle() -> Any:
    """A libguestfs handle that has not read the environment (``handle`` gives it one)."""
    try:
        import guestfs  # Debian's python3-guestfs (the venv sees system site packages)
    except ImportError:
        raise HostError(
            "python3-guestfs is missing: install the Debian package python3-guestfs and use "
            "a virtual environment made with --system-site-packages (scripts/setup.sh)"
        ) from None
    return guestfs.GuestFS(python_return_dict=True, environment=False)


def read_files(
    image: Path, partition: int, files: Sequence[str], fmt: str = "raw"
) -> dict[str, bytes | None]:
    """``files`` read from partition number ``partition``; None for files that do not exist."""
    with handle() as g:
        g.add_drive_opts(str(image), readonly=1, format=fmt)
        try:
            g.launch()
            g.mount_ro(f"/dev/sda{partition}", "/")
            result: dict[str, bytes | None] = {}
            for path in files:
                try:
                    result[path] = bytes(g.read_file(path))
                except RuntimeError:
                    result[path] = None
            g.umount_all()
            return result
        except RuntimeError as err:
            why = f"libguestfs could not read {image} partition {partition}: {err}"
            raise HostError(why) from err
