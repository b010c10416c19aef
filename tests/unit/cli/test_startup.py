"""The command line starts without the modules of the work it is not asked to do."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "composer.build.pipeline",
    "composer.judge.run",
    "composer.manifest.model",
    "composer.blueprint.model",
    "composer.inspect.image",
    "composer.matrix.graph",
    "composer.uki_virt.virt",
    "cryptography",
    "pydantic",
)


def test_help_and_completion_load_no_work_module() -> None:
    """What `dps-composer --help` and a shell's completion load: the CLI's own modules."""
    code = (
        "import sys\n"
        "from composer.cli.commands import app\n"
        "from typer.main import get_command\n"
        "get_command(app)\n"  # every command's parameters, as --help and completion see them
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
