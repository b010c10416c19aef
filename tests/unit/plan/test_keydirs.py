"""Which key directories a build may sign with (composer/plan/keydirs.py): a blueprint's
``[secureboot] keys`` and ``[measured] keys`` lie below the blueprint's own directory (no
absolute path, ``~``, ``..`` or link out of it); anywhere else only from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core.errors import BlueprintError, UsageError
from composer.plan.load import load
from composer.plan.plan import plan_text, with_key_dirs

from ..cli_run import cli

SIGNED = 'name = "k"\ndistro = "debian-13"\n[secureboot]\nsign = true\n'
SEALED = 'name = "k"\ndistro = "debian-13"\n[measured]\nsign_policy = true\n'


def _blueprint(where: Path, text: str) -> Path:
    bp = where / "team-a" / "bp.toml"
    bp.parent.mkdir(exist_ok=True)
    bp.write_text(text)
    return bp


@pytest.mark.parametrize("value", ["/srv/team-b/keys", "~/keys", "~team-b/keys", "../team-b/keys",
                                   "keys/../../team-b/keys"])  # fmt: skip
@pytest.mark.parametrize(("table", "key", "option"), [
    (SIGNED, "secureboot.keys", "--keys"), (SEALED, "measured.keys", "--pcr-keys"),
])  # fmt: skip
def test_a_key_directory_outside_the_blueprints_is_refused_by_name(
    value: str, table: str, key: str, option: str
) -> None:
    with pytest.raises(BlueprintError) as info:
        plan_text(f'{table}keys = "{value}"\n', "/srv/team-a/bp.toml")
    text = str(info.value)
    assert text.startswith(f"/srv/team-a/bp.toml:5: {key}: {value!r}"), text
    assert f"dps-composer build {option} DIR" in text and "leave keys out" in text


def test_a_key_directory_below_the_blueprint_is_planned_there(tmp_path: Path) -> None:
    bp = _blueprint(tmp_path, f'{SIGNED}keys = "keys/./sb"\n')
    (bp.parent / "keys" / "sb").mkdir(parents=True)
    assert load(bp) is not None
    assert plan_text(bp.read_text(), str(bp)).secureboot_keys == str(bp.parent / "keys/sb")


def test_a_link_out_of_the_blueprints_directory_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "team-b" / "keys"
    theirs.mkdir(parents=True)
    bp = _blueprint(tmp_path, f'{SEALED}keys = "pcr/keys"\n')
    (bp.parent / "pcr").symlink_to(theirs.parent)  # a link on the way, not the last part
    with pytest.raises(BlueprintError) as info:
        load(bp)
    assert f"{bp}:5: measured.keys: 'pcr/keys' leads out of the blueprint's directory" in str(
        info.value
    )
    assert str(theirs) in str(info.value)
    # a link that stays inside is a path like any other
    (bp.parent / "pcr").unlink()
    (bp.parent / "real").mkdir()
    (bp.parent / "pcr").symlink_to("real")
    assert load(bp).measured.keys == "pcr/keys"


def test_a_blueprint_in_a_linked_directory_keeps_its_own_keys(tmp_path: Path) -> None:
    bp = _blueprint(tmp_path, f'{SIGNED}keys = "keys"\n')
    (bp.parent / "keys").mkdir()
    (tmp_path / "alias").symlink_to(bp.parent)
    assert load(tmp_path / "alias" / "bp.toml").secureboot.keys == "keys"


def test_key_directories_from_the_command_line_replace_the_blueprints(tmp_path: Path) -> None:
    plan = plan_text(f'{SIGNED}keys = "mine"\n[measured]\nsign_policy = true\n', "/bp/k.toml")
    given = with_key_dirs(plan, Path("/srv/ci/sb"), Path("rel/pcr"))
    assert given.secureboot_keys == "/srv/ci/sb"
    assert given.pcr_keys == str(Path.cwd() / "rel/pcr")
    assert with_key_dirs(plan, None, None) == plan
    unsigned = plan_text('name = "k"\ndistro = "debian-13"\n', "/bp/k.toml")
    with pytest.raises(UsageError, match=r"--keys /k: .*set \[secureboot\] sign = true"):
        with_key_dirs(unsigned, Path("/k"), None)
    with pytest.raises(UsageError, match=r"--pcr-keys /k: .*sign_policy = true"):
        with_key_dirs(unsigned, None, Path("/k"))


def test_build_refuses_before_building_naming_file_key_and_remedy(tmp_path: Path) -> None:
    theirs = tmp_path / "team-b"
    theirs.mkdir()
    bp = _blueprint(tmp_path, f'{SIGNED}keys = "{theirs}"\n')
    out = tmp_path / "out"
    proc = cli("build", bp, "-o", out, "--cache-dir", tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    assert f"{bp}:5: secureboot.keys:" in proc.stderr and "--keys DIR" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
    bp.write_text('name = "k"\ndistro = "debian-13"\n')
    proc = cli("build", bp, "--pcr-keys", theirs, "-o", out, "--cache-dir", tmp_path / "cache")
    assert proc.returncode == 2 and "--pcr-keys" in proc.stderr and "sign_policy" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
