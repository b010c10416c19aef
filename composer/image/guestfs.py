"""Read files from file systems the offline readers cannot (xfs, btrfs, ...) with libguestfs:
a small appliance VM mounts the partition read-only. Slower (~20 s under TCG), so only the
fallback. LIBGUESTFS_BACKEND=direct and force_tcg (KVM is unusable on hosts like this one)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from composer.core.errors import HostError


def new_handle() -> Any:
    """A libguestfs handle (direct backend, TCG: no libvirt, and KVM may not work)."""
    try:
        import guestfs  # Debian's python3-guestfs (the venv sees system site packages)
    except ImportError:
        raise HostError(
            "python3-guestfs is missing: install the Debian package python3-guestfs and use "
            "a virtual environment made with --system-site-packages (scripts/setup.sh)"
        ) from None
    os.environ.setdefault("LIBGUESTFS_BACKEND", "direct")
    os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
    return guestfs.GuestFS(python_return_dict=True)


def _handle(image: Path, fmt: str) -> Any:
    g = new_handle()
    g.add_drive_opts(str(image), readonly=1, format=fmt)
    return g


def read_files(
    image: Path, partition: int, paths: Sequence[str], fmt: str = "raw"
) -> dict[str, bytes | None]:
    """``paths`` read from partition number ``partition``; None for files that do not exist."""
    g = _handle(image, fmt)
    try:
        g.launch()
        g.mount_ro(f"/dev/sda{partition}", "/")
        result: dict[str, bytes | None] = {}
        for path in paths:
            try:
                result[path] = bytes(g.read_file(path))
            except RuntimeError:
                result[path] = None
        g.umount_all()
        return result
    except RuntimeError as err:
        raise HostError(f"libguestfs could not read {image} partition {partition}: {err}") from err
    finally:
        g.shutdown()
        g.close()
