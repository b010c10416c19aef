"""What a blueprint file may be: a regular, reasonably sized UTF-8 file of bounded nesting.
Anything else is a clear error, never a hang or a traceback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from composer.blueprint.text import MAX_BLUEPRINT_BYTES, MAX_DEPTH
from composer.core.errors import BlueprintError
from composer.plan.load import load, parse
from composer.plan.plan import plan_text

from ..cli_run import cli


def test_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "bp.toml"
    os.mkfifo(fifo)
    proc = cli("plan", str(fifo), timeout=30)  # would block forever reading a FIFO
    assert proc.returncode == 2, proc.stderr
    assert "a FIFO, not a regular file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "character device"), (".", "directory")])
def test_devices_and_directories_are_refused(path: str, kind: str) -> None:
    with pytest.raises(BlueprintError, match=kind):
        load(Path(path))


def test_huge_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    with open(big, "wb") as fh:
        fh.truncate(MAX_BLUEPRINT_BYTES + 1)
    with pytest.raises(BlueprintError, match="larger than"):
        load(big)


def test_deep_nesting_is_a_depth_error_not_a_recursion_error() -> None:
    for text in (
        "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n",
        "[" + ".".join(["a"] * (MAX_DEPTH + 5)) + "]\nb = 1\n",
    ):
        with pytest.raises(BlueprintError) as exc:
            parse('name = "x"\n' + text, "deep.toml")
        assert "deep" in exc.value.message and exc.value.line, exc.value


def test_not_utf8_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(BlueprintError, match="UTF-8"):
        load(bad)
    with pytest.raises(BlueprintError, match="cannot read"):
        load(tmp_path / "missing.toml")


def test_plan_refusals_name_the_line_too() -> None:
    text = 'name = "x"\ndistro = "fedora-99"\n'  # kickstart only: plan refuses it
    with pytest.raises(BlueprintError) as exc:
        plan_text(text, "f.toml")
    assert (exc.value.file, exc.value.line, exc.value.key) == ("f.toml", 2, "distro")


def _commands(cmd: Any, path: str = "") -> list[tuple[str, Any]]:
    found = [(path, cmd)]
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            found += _commands(sub, f"{path} {name}".strip())
    return found


def _flat(text: str) -> str:
    return "".join(text.split())  # wrapping may split anywhere, even at a hyphen


def test_help_texts_are_printed_literally() -> None:
    """Every command's help shows its docstring and every option's help word for word:
    rich markup is off, so "[image]", "[]" or "[/x]" in the tool's own texts stay."""
    from composer.cli import app

    root = typer.main.get_command(app)
    for path, cmd in _commands(root):
        with typer.Context(cmd, info_name=path or "dps-composer") as ctx:
            shown = _flat(cmd.get_help(ctx))
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for text in texts:
            first = _flat(text.split("\n\n")[0])
            assert first in shown, (path, first)
    proc = cli("fixup", "--help")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "[OPTIONS] [image]" in proc.stdout
