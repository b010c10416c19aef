"""README.md says what the project does; these tests hold it to the code and to CI."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from composer.build.stages.sequence import NAMES
from composer.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """The indented command lines at the top of README.md (the build-and-boot and test lines)."""
    return re.findall(r"^    (scripts/setup\.sh && .+)$", README, flags=re.MULTILINE)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = next(c for c in readme_commands() if "pytest" in c)
    ci = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci == [test_command + " -v"]


def test_the_readme_test_command_runs_two_files_at_a_time() -> None:
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert test_command.endswith("pytest -n 2 --dist loadfile")
    pyproject = (ROOT / "pyproject.toml").read_text()
    addopts = re.search(r"^addopts = \"(.*)\"$", pyproject, flags=re.MULTILINE)
    assert addopts is not None and "-n" not in addopts.group(1).split()


def readme_stages() -> list[str]:
    """The stage names of README.md's numbered "Build stages" list, in its order."""
    section = README.split("### Build stages\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\d+\. \*\*([a-z-]+)\*\*:", section, flags=re.MULTILINE)


def test_readme_and_plan_list_the_stages_of_the_build_in_its_order() -> None:
    result = CliRunner().invoke(app, ["plan", str(ROOT / "blueprints/debian-uki-sdboot.toml")])
    assert result.exit_code == 0, result.output
    planned = [s["name"] for s in json.loads(result.stdout)["stages"]]
    assert readme_stages() == planned == list(NAMES)
