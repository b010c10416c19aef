"""Error messages print user values literally: rich markup in a value is text, not markup."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from composer.cli import app


def test_markup_in_a_value_is_printed_as_it_is(tmp_path: Path) -> None:
    bp = tmp_path / "bp.toml"
    bp.write_text('name = "x"\n[customizations]\nhostname = "[/x] [link=file:///etc]a[/link]"\n')
    result = CliRunner().invoke(app, ["plan", str(bp)])
    assert result.exit_code == 2
    assert "[/x] [link=file:///etc]a[/link]" in result.output
    assert "Traceback" not in result.output
