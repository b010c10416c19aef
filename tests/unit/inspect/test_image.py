"""inspect_image(): what an image's own faults make of the report (exit 1, not 3)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from composer.spec import dps

from ..cli_run import cli


def test_an_esp_without_a_file_system_is_the_images_problem(tmp_path: Path) -> None:
    """mtools cannot read it: the root is not discoverable (1), not a host error (3)."""
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 64 * 2**20)
    esp, root = dps.by_name("esp").uuid, dps.by_name("root-x86-64").uuid
    table = f"label: gpt\nsize=8MiB, type={esp}\ntype={root}\n"
    subprocess.run(["sfdisk", "-q", image], input=table.encode(), check=True)
    done = cli("inspect", image, "--json=short")
    assert done.returncode == 1, done.stderr
    problems = json.loads(done.stdout)["discovery"]["problems"]
    assert any(p.startswith("ESP (partition 1) unreadable") for p in problems), problems
