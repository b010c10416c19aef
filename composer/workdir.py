"""A build's scratch directory, and the clean-up of those that killed builds left behind.

A build removes its directory when it ends, also on errors and Ctrl-C; a build killed with
SIGKILL (or a machine that lost power) cannot. Each directory therefore holds a lock file that
its build keeps locked while it runs; the next build removes every directory whose lock nobody
holds. Mounts are never left in them: commands in a tree run in private mount namespaces.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = "dps-composer-"
LOCK = ".dps-composer-build.lock"
ENV = "DPS_COMPOSER_WORK_DIR"


def work_parent(override: Path | None = None) -> Path:
    """Where scratch directories go: ``override``, $DPS_COMPOSER_WORK_DIR or /var/tmp (a
    build needs about 1 GB there; /tmp is often a small tmpfs)."""
    return override or Path(os.environ.get(ENV) or "/var/tmp")


@contextlib.contextmanager
def scratch_dir(name: str, parent: Path) -> Iterator[Path]:
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{name}-", dir=parent))
    fd = os.open(path / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_stale(parent: Path) -> list[Path]:
    """Remove the scratch directories of builds that no longer run; returns them."""
    removed = []
    for path in sorted(parent.glob(f"{PREFIX}*")):
        try:
            fd = os.open(path / LOCK, os.O_RDWR)
        except OSError:  # not a build's directory, or one whose build is just starting
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its build is running
            continue
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed
