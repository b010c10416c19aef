"""`--version` and `-h`, through the real command line."""

from __future__ import annotations

from composer import __version__
from composer.core import version

from ..cli_run import cli


def test_version_names_the_package_and_the_commit() -> None:
    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"dps-composer {version.current()}"
    assert __version__ in done.stdout


def test_h_is_help_everywhere() -> None:
    for args in (["-h"], ["boot", "-h"], ["cache", "list", "-h"]):
        done = cli(*args)
        assert done.returncode == 0 and "Usage:" in done.stdout, args
