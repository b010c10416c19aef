"""Cells: the product of the axes, excludes, includes, actions, the blueprint of each cell."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.matrix.cells import Cell, Source, cells
from composer.matrix.graph import plan_matrix
from composer.matrix.model import load

from .matrices import FOUR, matrix_dir


def _cells(tmp_path: Path, text: str = FOUR) -> list[Cell]:
    path = matrix_dir(tmp_path, text)
    model, raw = load(path)
    return cells(Source(model, str(path), raw))


def test_product_in_axis_order_with_overrides(tmp_path: Path) -> None:
    found = _cells(tmp_path)
    assert [c.id for c in found] == ["a-qcow2", "a-raw", "b-qcow2", "b-raw"]
    assert [c.action for c in found] == ["build+boot", "build", "build", "build"]
    assert found[3].blueprint is not None
    data = tomllib.loads(found[3].blueprint)
    assert data["customizations"]["hostname"] == "beta"
    assert data["image"]["formats"] == ["raw"]
    # everything else is the base blueprint's, unchanged
    base = tomllib.loads((tmp_path / "base.toml").read_text())
    assert data["packages"] == base["packages"]
    assert data["customizations"]["user"] == base["customizations"]["user"]
    assert found[3].source == tmp_path / "base.toml"


def test_excludes_and_includes(tmp_path: Path) -> None:
    text = (
        FOUR
        + '\n[[exclude]]\nwhere = { fmt = "raw" }\n\n[[include]]\nwhere = { host = "b", fmt = "raw" }\naction = "build+boot"\n'
    )
    found = _cells(tmp_path, text)
    assert [(c.id, c.action) for c in found] == [
        ("a-qcow2", "build+boot"),
        ("b-qcow2", "build"),
        ("b-raw", "build+boot"),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[exclude]]\nwhere = { colour = "red" }\n', "exclude[0].where.colour: no such axis"),
        ('[[exclude]]\nwhere = { host = "c" }\n', "'c' is not a value of axis 'host'"),
        (
            '[[include]]\nwhere = { host = "a" }\n',
            "include[0].where: an included cell names a value of every axis: add fmt",
        ),
    ],
)
def test_selections_name_axes_and_values_that_exist(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(BlueprintError, match=re.escape(message)):
        _cells(tmp_path, FOUR + "\n" + extra)


def test_paths_stay_inside_the_matrix_directory(tmp_path: Path) -> None:
    inner = tmp_path / "m"
    inner.mkdir()
    (tmp_path / "outside.toml").write_text(
        (Path(__file__).parents[3] / "blueprints/debian-uki-sdboot.toml").read_text()
    )
    with pytest.raises(
        BlueprintError, match=r"matrix.base: '../outside.toml' leaves the matrix file's directory"
    ):
        _cells(inner, FOUR.replace('base = "base.toml"', 'base = "../outside.toml"'))
    (inner / "link.toml").symlink_to(tmp_path / "outside.toml")
    with pytest.raises(BlueprintError, match="leaves the matrix file's directory"):
        _cells(inner, FOUR.replace('base = "base.toml"', 'base = "link.toml"'))
    with pytest.raises(BlueprintError, match="axis.0..values.0..image"):
        _cells(
            inner,
            FOUR.replace('name = "a", hostname = "alpha"', 'name = "a", image = "/etc/shadow"'),
        )


def test_boot_only_cells_need_an_image(tmp_path: Path) -> None:
    (tmp_path / "x.qcow2").write_bytes(b"")
    text = FOUR.replace('name = "a", hostname = "alpha"', 'name = "a", image = "x.qcow2"')
    text += '\n[[actions]]\nwhere = { host = "a" }\naction = "boot"\n'
    found = _cells(tmp_path, text)
    assert found[0].action == "boot" and found[0].image == tmp_path / "x.qcow2"
    assert found[0].blueprint is None
    with pytest.raises(BlueprintError, match="cell b-qcow2 boots an existing image"):
        _cells(tmp_path, FOUR + '\n[[actions]]\nwhere = { host = "b" }\naction = "boot"\n')


def test_customizations_merge_and_kernel(tmp_path: Path) -> None:
    text = FOUR.replace(
        'name = "b", hostname = "beta"',
        'name = "b", kernel = "linux-image-cloud-amd64", customizations = { timezone = "UTC", kernel = { append = "quiet" } }',
    )
    blueprint = _cells(tmp_path, text)[2].blueprint
    assert blueprint is not None
    data = tomllib.loads(blueprint)
    assert data["customizations"]["kernel"] == {
        "append": "quiet",
        "name": "linux-image-cloud-amd64",
    }
    assert data["customizations"]["timezone"] == "UTC"
    assert data["customizations"]["hostname"] == "dps-debian"


def test_a_matrix_cell_gets_its_blueprints_keys_on_its_command_line(tmp_path: Path) -> None:
    matrix = matrix_dir(tmp_path)
    base = tmp_path / "base.toml"
    base.write_text(base.read_text() + '\n[secureboot]\nsign = true\nkeys = "keys/sb"\n')
    (tmp_path / "keys" / "sb").mkdir(parents=True)
    graph = plan_matrix(matrix, tmp_path / "cache")
    builds = [t for t in graph.tasks if t.kind == "build"]
    assert builds and all(t.build_args == ["--keys", str(tmp_path / "keys/sb")] for t in builds)
    assert all("keys" not in (t.blueprint or "") for t in builds)
    (tmp_path / "keys" / "sb").rmdir()
    (tmp_path / "keys" / "sb").symlink_to(tmp_path.parent)
    with pytest.raises(BlueprintError, match="secureboot.keys: 'keys/sb' leads out"):
        plan_matrix(matrix, tmp_path / "cache")
