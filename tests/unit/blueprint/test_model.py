"""The blueprint model: its keys, their types and values, the errors that name them.

Also: [boot] loader, [secureboot] and [image] formats / qcow2_compression: validation and plan."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from composer.blueprint.model import OutputFormat
from composer.core.errors import BlueprintError
from composer.image.formats import FORMATS
from composer.plan.load import load, parse
from composer.plan.plan import make_plan

ROOT = Path(__file__).resolve().parents[3]

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
        bp.name = "other"


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


# --- [boot], [secureboot], [image] formats ------------------------------------------------


@pytest.mark.parametrize("loader", ["systemd-boot", "grub2", "uki-direct"])
def test_loaders_accepted(loader: str) -> None:
    assert parse(f'name = "x"\n[boot]\nloader = "{loader}"\n').boot.loader == loader


def test_unknown_loader_names_key_and_choices() -> None:
    e = err('name = "x"\n[boot]\nloader = "lilo"\n')
    assert (e.line, e.key) == (3, "boot.loader")
    assert "grub2" in e.message and "uki-direct" in e.message


def test_default_timeouts_per_loader() -> None:
    def timeout(loader: str) -> int:
        return make_plan(parse(f'name = "x"\n[boot]\nloader = "{loader}"\n')).loader_timeout

    assert timeout("systemd-boot") == 0
    assert timeout("grub2") == 1  # the menu must show on the serial console
    assert (
        make_plan(parse('name = "x"\n[boot]\nloader = "grub2"\ntimeout = 5\n')).loader_timeout == 5
    )


def test_uki_direct_has_no_menu_timeout() -> None:
    e = err('name = "x"\n[boot]\nloader = "uki-direct"\ntimeout = 3\n')
    assert (e.line, e.key) == (4, "boot.timeout")
    assert "no boot menu" in e.message


def test_secureboot_defaults_off() -> None:
    plan = make_plan(parse('name = "x"\n'))
    assert plan.secureboot_sign is False and plan.secureboot_keys is None


def test_secureboot_keys_relative_to_blueprint() -> None:
    bp = parse('name = "x"\n[secureboot]\nsign = true\nkeys = "keys/sb"\n')
    assert make_plan(bp, "/srv/bp/x.toml").secureboot_keys == "/srv/bp/keys/sb"
    assert make_plan(bp, "/srv/bp/x.toml").secureboot_sign is True
    absolute = parse('name = "x"\n[secureboot]\nsign = true\nkeys = "/etc/sb"\n')
    with pytest.raises(BlueprintError, match="absolute path"):  # tests/unit/plan/test_keydirs.py
        make_plan(absolute, "/srv/bp/x.toml")


def test_secureboot_keys_without_sign_is_an_error() -> None:
    e = err('name = "x"\n[secureboot]\nkeys = "k"\n')
    assert e.key == "secureboot" and "sign = true" in e.message


def test_secureboot_unknown_key() -> None:
    e = err('name = "x"\n[secureboot]\nsign = true\nkey = "k"\n')
    assert (e.line, e.key) == (4, "secureboot.key")
    assert "keys" in e.message and "sign" in e.message


def test_secureboot_sign_must_be_bool() -> None:
    assert err('name = "x"\n[secureboot]\nsign = "yes"\n').key == "secureboot.sign"


def test_every_format_accepted_and_known_to_output() -> None:
    names = get_args(OutputFormat)
    assert set(names) == set(FORMATS)
    listed = ", ".join(f'"{n}"' for n in names)
    bp = parse(f'name = "x"\n[image]\nformats = [{listed}]\n')
    assert bp.image.formats == names
    plan = make_plan(bp)
    assert [plan.output_name(f) for f in ("raw.zst", "vhd")] == ["x.raw.zst", "x.vhd"]


def test_qcow2_compression() -> None:
    assert parse('name = "x"\n').image.qcow2_compression == "zstd"
    for c in ("zstd", "zlib", "none"):
        bp = parse(f'name = "x"\n[image]\nqcow2_compression = "{c}"\n')
        assert make_plan(bp).qcow2_compression == c
    e = err('name = "x"\n[image]\nqcow2_compression = "lz4"\n')
    assert (e.line, e.key) == (3, "image.qcow2_compression")


@pytest.mark.parametrize(
    "name",
    ["debian-uki-grub2", "debian-uki-direct", "debian-uki-sdboot-secureboot"],
)
def test_example_blueprints_load(name: str) -> None:
    plan = make_plan(load(ROOT / f"blueprints/{name}.toml"))
    assert plan.name == name
