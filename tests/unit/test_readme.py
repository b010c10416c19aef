"""README.md says what the project does; these tests hold it to the code and to CI."""

from __future__ import annotations

import re
from pathlib import Path

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
