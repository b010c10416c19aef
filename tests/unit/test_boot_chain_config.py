"""[boot] loader, [secureboot] and [image] formats / qcow2_compression: validation and plan."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from composer.blueprint.model import OutputFormat
from composer.core.errors import BlueprintError
from composer.image.formats import FORMATS
from composer.plan.load import load, parse
from composer.plan.plan import make_plan

ROOT = Path(__file__).resolve().parents[2]


def err(text: str) -> BlueprintError:
    with pytest.raises(BlueprintError) as info:
        parse(text, "bp.toml")
    return info.value


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
    assert make_plan(absolute, "/srv/bp/x.toml").secureboot_keys == "/etc/sb"


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
