"""The command lines a matrix task runs are ones the real command line accepts: parsed by the
CLI's own click commands (every option known, every value of a valid type)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from composer.cli.commands import app
from composer.matrix.tasks import boot_argv, build_argv


def _parse(argv: list[str]) -> dict[str, Any]:
    """The parameters the CLI's command ``argv[0]`` would be called with (typer's own click:
    it may be a vendored copy, so nothing here names click's classes)."""
    group: Any = typer.main.get_command(app)
    with group.make_context("dps-composer", list(argv)) as top:
        command = group.get_command(top, argv[0])
        assert command is not None, argv[0]
        with command.make_context(argv[0], argv[1:], parent=top) as ctx:
            return dict(ctx.params)


def test_a_cells_build_line_parses(tmp_path: Path) -> None:
    bp = tmp_path / "cell.toml"
    bp.write_text('name = "cell"\n')
    params = _parse(build_argv(bp, tmp_path / "out"))
    assert tmp_path / "out" in params.values()


def test_a_cells_key_directories_reach_its_build_line(tmp_path: Path) -> None:
    bp = tmp_path / "cell.toml"
    bp.write_text('name = "cell"\n')
    args = ["--keys", str(tmp_path / "sb"), "--pcr-keys", str(tmp_path / "pcr")]
    params = _parse(build_argv(bp, tmp_path / "out", args))
    assert params["keys"] == tmp_path / "sb" and params["pcr_keys"] == tmp_path / "pcr"


def test_a_cells_boot_line_parses_and_writes_its_verdict_to_a_file(tmp_path: Path) -> None:
    image = tmp_path / "cell.qcow2"
    image.write_bytes(b"")
    params = _parse(boot_argv(str(image), tmp_path / "verdict.json", tmp_path, 600.0))
    assert params["json_file"] == tmp_path / "verdict.json"
    assert params["report"] == tmp_path / "report"
    assert params["timeout"] == 600.0


def test_an_unknown_option_would_be_caught(tmp_path: Path) -> None:
    with pytest.raises(Exception) as raised:
        _parse(["boot", str(tmp_path / "x.qcow2"), "--no-such-option"])
    assert type(raised.value).__name__ == "NoSuchOption"
