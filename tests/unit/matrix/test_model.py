"""The matrix file: typed, every problem named with file, line and key; paths stay inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.matrix.model import load, parse


def _error(text: str) -> str:
    with pytest.raises(BlueprintError) as info:
        parse(text, "m.toml")
    return str(info.value)


def test_a_minimal_matrix_has_defaults() -> None:
    m = parse('[matrix]\nname = "x"\n[[axis]]\nname = "a"\nvalues = [{ name = "v" }]\n', "m.toml")
    assert m.matrix.action == "build"
    assert m.limits.boots_per_worker == 1
    assert m.limits.seconds("build") == 3600.0


def test_unknown_key_names_line_key_and_the_valid_keys() -> None:
    text = '[matrix]\nname = "x"\n[[axis]]\nname = "a"\nvalues = [{ name = "v", hostnme = "h" }]\n'
    msg = _error(text)
    assert "m.toml:5: axis[0].values[0].hostnme: unknown key" in msg
    assert "hostname" in msg and "formats" in msg
    assert "at least 1 item" not in msg  # no echo of the bad item as an empty list


def test_bad_values_are_named() -> None:
    assert "matrix.name: 'Bad Name' is not a name" in _error(
        '[matrix]\nname = "Bad Name"\n[[axis]]\nname = "a"\nvalues = [{ name = "v" }]\n'
    )
    assert "matrix.action" in _error(
        '[matrix]\nname = "x"\naction = "test"\n[[axis]]\nname = "a"\nvalues = [{ name = "v" }]\n'
    )
    msg = _error(
        '[matrix]\nname = "x"\n[[axis]]\nname = "a"\nvalues = [{ name = "v" }, { name = "v" }]\n'
    )
    assert "v twice" in msg
    msg = _error(
        '[matrix]\nname = "x"\n[limits]\nbuild_timeout = "soon"\n[[axis]]\nname = "a"\nvalues = [{ name = "v" }]\n'
    )
    assert "limits.build_timeout" in msg and "10 min" in msg


def test_strict_types_no_coercion() -> None:
    msg = _error(
        '[matrix]\nname = "x"\n[[axis]]\nname = "a"\nvalues = [{ name = "v", secure_boot = "yes" }]\n'
    )
    assert "axis[0].values[0].secure_boot" in msg


def test_not_toml_and_hostile_files(tmp_path: Path) -> None:
    assert "m.toml:1: not valid TOML" in _error("x")
    assert "nested too deep" in _error("a = " + "[" * 5000 + "]" * 5000)
    fifo = tmp_path / "fifo.toml"
    import os

    os.mkfifo(fifo)
    with pytest.raises(BlueprintError, match="not a regular file"):
        load(fifo)
