"""Where the composer keeps things, and every ``DPS_COMPOSER_*`` environment variable it reads:
one place, so that each has one meaning and one default.

- ``DPS_COMPOSER_CACHE_DIR``: the cache (stage cache, tools tree, package cache, keys, secret);
  default ``$XDG_CACHE_HOME/dps-composer``, else ``~/.cache/dps-composer``. ``--cache-dir``
  options read it too (typer's ``envvar``).
- ``DPS_COMPOSER_CACHE_MAX``: how big the stage cache may grow after a build (build/cache.py).
- ``DPS_COMPOSER_WORK_DIR``: where scratch directories go; default /var/tmp (a build needs
  about 1 GB there; /tmp is often a small tmpfs), but a build's goes to /dev/shm when the
  machine can spare the memory (composer/core/workdir.py ``build_parent``).
- ``DPS_COMPOSER_KICKSTART_DIR``: kickstart templates other than the packaged ones.
- ``DPS_COMPOSER_ACCEL``: the accelerator ``boot --accel auto`` means (kvm or tcg).
- ``DPS_COMPOSER_BOOT_TOOLS``: where ``boot`` takes QEMU, OVMF and swtpm from: ``tree`` (the
  cached trixie boot tools tree), ``host``, or ``auto`` (the default: the tree, else the host).
- ``DPS_COMPOSER_VCPUS``: vCPUs per VM for ``boot`` (its ``--vcpus``): one where boots run
  side by side on a host with few cores.
"""

from __future__ import annotations

import os
from pathlib import Path

from composer import DATA

__all__ = ["DATA", "accel", "boot_tools", "cache_dir", "cache_max", "kickstart_dir", "work_dir"]

CACHE_DIR_ENV = "DPS_COMPOSER_CACHE_DIR"
CACHE_MAX_ENV = "DPS_COMPOSER_CACHE_MAX"
WORK_DIR_ENV = "DPS_COMPOSER_WORK_DIR"
KICKSTART_DIR_ENV = "DPS_COMPOSER_KICKSTART_DIR"
ACCEL_ENV = "DPS_COMPOSER_ACCEL"
BOOT_TOOLS_ENV = "DPS_COMPOSER_BOOT_TOOLS"
VCPUS_ENV = "DPS_COMPOSER_VCPUS"
TEMPLATES = DATA / "templates"


def cache_dir() -> Path:
    """The cache directory when no ``--cache-dir`` is given."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dps-composer"


def cache_max() -> str:
    """The stage cache's size cap as written ("" when unset)."""
    return os.environ.get(CACHE_MAX_ENV, "").strip()


def work_dir(override: Path | None = None) -> Path:
    """Where scratch directories go: ``override``, else $DPS_COMPOSER_WORK_DIR, else /var/tmp."""
    return override or Path(os.environ.get(WORK_DIR_ENV) or "/var/tmp")


def kickstart_dir() -> Path | None:
    env = os.environ.get(KICKSTART_DIR_ENV)
    return Path(env) if env else None


def accel() -> str:
    """The accelerator ``auto`` stands for, lower case ("" when unset)."""
    return os.environ.get(ACCEL_ENV, "").strip().lower()


def boot_tools() -> str:
    """Where ``boot`` takes its emulator from, lower case ("" when unset: auto)."""
    return os.environ.get(BOOT_TOOLS_ENV, "").strip().lower()
