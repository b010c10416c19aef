"""What the command line documents about itself: the man page is current, every
DPS_COMPOSER_* variable the code reads is documented, choices are listed in help, shell
completion works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

from composer.cli import boot, install, manpage
from composer.fixup.facts import LOADERS
from composer.judge.kvm import ACCELS

from ..cli_run import ROOT, cli

VARIABLE = re.compile(r"\bDPS_COMPOSER_[A-Z][A-Z_]*[A-Z]\b")


def test_the_man_page_is_current() -> None:
    assert manpage.TARGET.read_text() == manpage.text(), (
        "docs/dps-composer.1 is stale: python -m composer.cli.manpage"
    )


def code_variables() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "composer").rglob("*"):
        if path.is_file() and path.suffix not in (".pyc", ".png"):
            found |= set(VARIABLE.findall(path.read_text(errors="replace")))
    return found


def test_every_environment_variable_is_documented() -> None:
    variables = code_variables()
    assert len(variables) >= 5, variables
    readme, page = (ROOT / "README.md").read_text(), manpage.text().replace("\\-", "-")
    for name in sorted(variables):
        assert name in readme, f"{name} is read by the code but README.md does not say so"
        assert name in page, f"{name} is missing from the man page's ENVIRONMENT"


def test_accel_and_loader_list_their_choices() -> None:
    accel = typing.get_type_hints(boot.boot, include_extras=True)["accel"]
    loader = typing.get_type_hints(install.fixup, include_extras=True)["loader"]
    assert typing.get_args(typing.get_args(accel)[0]) == ACCELS
    assert typing.get_args(typing.get_args(loader)[0]) == LOADERS
    assert "--accel <auto|kvm|tcg>" in cli("boot", "-h").stdout
    assert "--loader <keep|systemd-boot|uki-direct|grub2>" in cli("fixup", "-h").stdout


def test_completion_script_and_answers() -> None:
    script = cli("completion", "bash")
    assert script.returncode == 0 and "_DPS_COMPOSER_COMPLETE=complete_bash" in script.stdout
    env = {
        **os.environ,
        "_DPS_COMPOSER_COMPLETE": "complete_bash",
        "COMP_WORDS": "dps-composer boot --acc",
        "COMP_CWORD": "2",
    }
    installed = Path(sys.executable).parent / "dps-composer"  # the name completion knows
    done = subprocess.run([installed], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["--accel"]


def test_the_man_page_renders(tmp_path: Path) -> None:
    page = tmp_path / "dps-composer.1"
    page.write_text(manpage.text())
    done = subprocess.run(
        ["man", "-l", "--warnings", str(page)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0"},
    )
    shown = re.sub(".\x08", "", done.stdout)  # bold and underline by overstriking
    assert done.returncode == 0 and "dps-composer boot" in shown, done.stderr
    assert "warning" not in done.stderr
