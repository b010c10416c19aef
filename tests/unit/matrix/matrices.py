"""Matrix files for the matrix unit tests, next to a copy of the default blueprint."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "blueprints" / "debian-uki-sdboot.toml"

FOUR = """
[matrix]
name = "demo"
base = "base.toml"

[[axis]]
name = "host"
values = [{ name = "a", hostname = "alpha" }, { name = "b", hostname = "beta" }]

[[axis]]
name = "fmt"
values = [{ name = "qcow2", formats = ["qcow2"] }, { name = "raw", formats = ["raw"] }]

[[actions]]
where = { host = "a", fmt = "qcow2" }
action = "build+boot"
"""


def matrix_dir(tmp_path: Path, text: str = FOUR) -> Path:
    """A directory with base.toml (the default blueprint) and m.toml (``text``)."""
    shutil.copy(DEFAULT, tmp_path / "base.toml")
    (tmp_path / "m.toml").write_text(text)
    return tmp_path / "m.toml"
