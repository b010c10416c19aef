"""Run the dps-composer CLI as a user does, in a child process with a time limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``timeout``: a command that would open a FIFO (or hang otherwise) fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "composer", *map(str, args)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
