from pathlib import Path

import pytest
from pydantic import ValidationError

from composer.core.errors import BlueprintError
from composer.plan.load import load, parse

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = 'name = "img"\n'


def err(text: str) -> BlueprintError:
    with pytest.raises(BlueprintError) as info:
        parse(text, "bp.toml")
    return info.value


def test_default_blueprint_loads() -> None:
    bp = load(ROOT / "blueprints/debian-uki-sdboot.toml")
    assert bp.name == "debian-uki-sdboot"
    assert bp.boot.loader == "systemd-boot"
    assert bp.customizations.user[0].name == "admin"
    assert bp.image.size == 2 * 1024**3
    assert bp.image.formats == ("raw", "qcow2")


def test_minimal_blueprint_gets_defaults() -> None:
    bp = parse(MINIMAL)
    assert bp.distro == "debian-13"
    assert bp.architecture == "x86_64"
    assert bp.validate_.tpm is True


def test_result_is_immutable() -> None:
    bp = parse(MINIMAL)
    with pytest.raises(ValidationError):
        bp.name = "other"  # type: ignore[misc]


def test_wrong_type_names_line_and_key() -> None:
    e = err('name = "x"\n\n[customizations]\nhostname = 42\n')
    assert (e.file, e.line, e.key) == ("bp.toml", 4, "customizations.hostname")
    assert "string" in e.message and "42" in e.message


def test_unknown_key_names_line_key_and_valid_keys() -> None:
    e = err(
        'name = "x"\n[[customizations.user]]\nname = "a1"\n[[customizations.user]]\nname = "b"\nshel = "/bin/sh"\n'
    )
    assert (e.line, e.key) == (6, "customizations.user[1].shel")
    assert "unknown key" in e.message and "shell" in e.message


def test_unknown_top_level_table() -> None:
    e = err('name = "x"\n[bogus]\na = 1\n')
    assert (e.line, e.key) == (2, "bogus")


def test_missing_required_key() -> None:
    e = err('description = "no name"\n')
    assert e.key == "name"
    assert "required" in e.message
    assert str(e).startswith("bp.toml")


def test_missing_key_in_array_table_points_at_its_header() -> None:
    e = err('name = "x"\n[[packages]]\nname = "vim"\n[[packages]]\nversion = "*"\n')
    assert (e.line, e.key) == (4, "packages[1].name")


def test_inline_table_value_error() -> None:
    e = err('name = "x"\n[customizations]\nkernel = { append = "root=/dev/vda2" }\n')
    assert e.key == "customizations.kernel.append"
    assert e.line == 3
    assert "DPS" in e.message


def test_plain_password_accepted_and_masked_in_the_plan() -> None:
    from composer.plan.plan import make_plan

    bp = parse('name = "x"\n[[customizations.user]]\nname = "u"\npassword = "secret"\n')
    assert bp.customizations.user[0].plain_password
    assert "secret" not in make_plan(bp).to_json()
    e = err('name = "x"\n[[customizations.user]]\nname = "u"\npassword = "a:b"\n')
    assert e.key == "customizations.user[0].password" and e.line == 4


def test_bad_size_and_format() -> None:
    assert err('name = "x"\n[image]\nsize = "4 parsecs"\n').key == "image.size"
    assert err('name = "x"\n[image]\nformats = ["iso"]\n').key == "image.formats[0]"


def test_invalid_toml_names_line() -> None:
    e = err('name = "x"\nbroken = \n')
    assert e.line == 2 and "TOML" in e.message


def test_unsupported_distro_lists_supported() -> None:
    e = err('name = "x"\ndistro = "ubuntu-24.04"\n')
    assert e.key == "distro" and "debian-13" in e.message and "fedora-" in e.message


def test_fedora_distro_loads_for_kickstart() -> None:
    assert parse('name = "x"\ndistro = "fedora-42"\n').distro == "fedora-42"


def test_cli_prints_error_without_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from composer.cli import app

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[customizations]\nhostname = 1\n')
    result = CliRunner().invoke(app, ["plan", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{bad}:3" in result.output and "customizations.hostname" in result.output
