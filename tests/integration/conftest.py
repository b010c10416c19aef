"""Integration tests build and boot real images: root, the Debian archive, QEMU/OVMF/swtpm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def composer(
    *args: str, check: bool = True, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """Run the dps-composer CLI the way a user does."""
    proc = subprocess.run(
        [sys.executable, "-m", "composer.cli", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"dps-composer {' '.join(args)} exited {proc.returncode}")
    return proc


@pytest.fixture(scope="session", autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests build images and must run as root")


@pytest.fixture(scope="session")
def default_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default blueprint, built once per session; returns the output directory."""
    out = tmp_path_factory.mktemp("default")
    composer("build", str(ROOT / "blueprints/debian-uki-sdboot.toml"), "-o", str(out))
    return out


def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return data
