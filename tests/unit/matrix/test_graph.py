"""The task graph: build tasks keyed by the planned image key, shared roots, boots after
builds; `matrix plan` pure and deterministic across processes and hash seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from composer.matrix.graph import plan_matrix

from .matrices import FOUR, ROOT, matrix_dir


def test_identical_cells_share_one_build_and_one_boot(tmp_path: Path) -> None:
    # a third axis whose values change nothing: every image is wanted twice
    text = FOUR + '\n[[axis]]\nname = "copy"\nvalues = [{ name = "one" }, { name = "two" }]\n'
    graph = plan_matrix(matrix_dir(tmp_path, text), tmp_path / "cache")
    builds = [t for t in graph.tasks if t.kind == "build"]
    assert len(graph.cells) == 8 and len(builds) == 4
    assert sorted(len(t.cells) for t in builds) == [2, 2, 2, 2]
    boots = [t for t in graph.tasks if t.kind == "boot"]
    assert len(boots) == 1 and boots[0].cells == ["a-qcow2-one", "a-qcow2-two"]
    assert boots[0].after == [graph.cell_tasks["a-qcow2-one"][0]]


def test_cells_sharing_a_root_wait_for_its_first_build(tmp_path: Path) -> None:
    graph = plan_matrix(matrix_dir(tmp_path), tmp_path / "cache")
    builds = [t for t in graph.tasks if t.kind == "build"]
    assert len({t.root_key for t in builds}) == 1  # hostname and formats: image-stage inputs
    assert len({t.key for t in builds}) == 4
    first, *rest = builds
    assert first.after == [] and all(t.after == [first.id] for t in rest)
    assert first.id == f"build-{first.key[:16]}"


def test_image_stage_inputs_share_the_root_and_a_kernel_does_not(tmp_path: Path) -> None:
    text = FOUR.replace(
        'name = "b", hostname = "beta"',
        'name = "b", hostname = "beta", customizations = { kernel = { append = "quiet" } }',
    )
    graph = plan_matrix(matrix_dir(tmp_path, text), tmp_path / "cache")
    builds = [t for t in graph.tasks if t.kind == "build"]
    # the command line, host name and formats are not root inputs: one root, four images
    assert len({t.root_key for t in builds}) == 1 and len({t.key for t in builds}) == 4
    kernel = FOUR.replace(
        'name = "b", hostname = "beta"', 'name = "b", kernel = "linux-image-cloud-amd64"'
    )
    graph = plan_matrix(matrix_dir(tmp_path, kernel), tmp_path / "cache")
    builds = [t for t in graph.tasks if t.kind == "build"]
    assert len({t.root_key for t in builds}) == 2  # another kernel package: another root
    firsts = [t for t in builds if not t.after]  # one per root, side by side
    assert len(firsts) == 2 and {t.root_key for t in firsts} == {t.root_key for t in builds}


def _plan_in_child(path: Path, cache: Path, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed, "DPS_COMPOSER_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-m", "composer", "matrix", "plan", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_plan_is_deterministic_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    path = matrix_dir(tmp_path)
    first = _plan_in_child(path, tmp_path / "cache", "1")
    assert _plan_in_child(path, tmp_path / "cache", "4242") == first
    data = json.loads(first)
    assert [c["id"] for c in data["cells"]] == ["a-qcow2", "a-raw", "b-qcow2", "b-raw"]
    assert [t["kind"] for t in data["tasks"]] == ["build", "boot", "build", "build", "build"]
    assert data["cells"][0]["tasks"] == [data["tasks"][0]["id"], data["tasks"][1]["id"]]


def _bad_plan(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = matrix_dir(tmp_path, text)
    return subprocess.run(
        [sys.executable, "-m", "composer", "matrix", "plan", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DPS_COMPOSER_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip


def test_plan_of_a_bad_matrix_exits_2_without_traceback(tmp_path: Path) -> None:
    done = _bad_plan(tmp_path, FOUR.replace('hostname = "alpha"', "hostname = 7"))
    assert done.returncode == 2
    assert "axis[0].values[0].hostname" in done.stderr and "Traceback" not in done.stderr


def test_a_cell_blueprint_error_names_the_cell(tmp_path: Path) -> None:
    done = _bad_plan(tmp_path, FOUR.replace('hostname = "alpha"', 'hostname = "-bad-"'))
    assert done.returncode == 2, done.stderr
    assert "matrix cell a-qcow2" in done.stderr and "hostname" in done.stderr
