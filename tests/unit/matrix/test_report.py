"""Cell status, exit codes, summary rows and the JUnit file (validated against the schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xmlschema

from composer.matrix.graph import Graph, plan_matrix
from composer.matrix.report import exit_code, junit_xml, summary_rows, write_cells
from composer.matrix.run import Outcome, cell_status, local_size, progress_line

from .matrices import ROOT, matrix_dir

SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests" / "data" / "junit.xsd"))


def _results(graph: Graph) -> dict[str, dict[str, Any]]:
    """a-qcow2 boots and FAILs, a-raw's build fails (exit 3), b-qcow2 passes, b-raw's task
    lost its workers."""
    ids = {c.id: graph.cell_tasks[c.id] for c in graph.cells}
    build_a, boot_a = ids["a-qcow2"]
    return {
        build_a: {"kind": "build", "exit_code": 0, "seconds": 40.0, "cache": {"root": "miss"}},
        boot_a: {"kind": "boot", "exit_code": 1, "seconds": 150.0, "outcome": "FAIL"},
        ids["a-raw"][0]: {"kind": "build", "exit_code": 3, "seconds": 2.0, "log": "x.log"},
        ids["b-qcow2"][0]: {
            "kind": "build",
            "exit_code": 0,
            "seconds": 9.0,
            "cache": {"root": "hit"},
        },
        ids["b-raw"][0]: {"kind": "build", "exit_code": None, "error": "KilledWorker: gone"},
    }


def test_statuses_exit_code_junit(tmp_path: Path) -> None:
    graph = plan_matrix(matrix_dir(tmp_path), tmp_path / "cache")
    outcome = Outcome(results=_results(graph))
    statuses = {c.id: cell_status(graph, c.id, outcome.results) for c in graph.cells}
    assert statuses == {
        "a-qcow2": ("FAIL", 1), "a-raw": ("ERROR", 3), "b-qcow2": ("PASS", 0), "b-raw": ("ERROR", 3),
    }  # fmt: skip
    records = write_cells(graph, outcome, tmp_path / "out")
    assert exit_code(records) == 3  # the gravest
    assert exit_code([r for r in records if r["status"] == "PASS"]) == 0
    assert (tmp_path / "out/cells/a-raw/report.json").is_file()
    assert 'hostname = "alpha"' in (tmp_path / "out/cells/a-raw/blueprint.toml").read_text()
    rows = summary_rows(records)
    assert rows[2] == ("b-qcow2", "build", "PASS", "exit 0, 9.0 s, cached: root", "-")
    xml = junit_xml(graph, records, 12.5)
    path = tmp_path / "j.xml"
    path.write_text(xml)
    SCHEMA.validate(str(path))
    assert xml.count("<testcase ") == 4
    assert xml.count("<failure ") == 1 and xml.count("<error ") == 2


def test_a_boot_that_timed_out_is_a_boot_infrastructure_error(tmp_path: Path) -> None:
    graph = plan_matrix(matrix_dir(tmp_path), tmp_path / "cache")
    results = _results(graph)
    boot = graph.cell_tasks["a-qcow2"][1]
    results[boot] = {"kind": "boot", "exit_code": 124, "seconds": 900.0}
    assert cell_status(graph, "a-qcow2", results) == ("ERROR", 4)


def test_a_cell_without_results_is_skipped(tmp_path: Path) -> None:
    graph = plan_matrix(matrix_dir(tmp_path), tmp_path / "cache")
    records = write_cells(graph, Outcome(), tmp_path / "out")
    assert {r["status"] for r in records} == {"SKIPPED"}
    path = tmp_path / "j.xml"
    path.write_text(junit_xml(graph, records, 0.0))
    SCHEMA.validate(str(path))


def test_progress_lines_say_what_happened(tmp_path: Path) -> None:
    graph = plan_matrix(matrix_dir(tmp_path), tmp_path / "cache")
    build = graph.tasks[0]
    line = progress_line(
        build, {"exit_code": 0, "seconds": 3.0, "worker": "tcp://w", "cache": {"root": "hit"}}
    )
    assert line == f"{build.id} (a-qcow2): built in 3.0 s on tcp://w; from the stage cache: root"
    boot = graph.tasks[1]
    assert "boot PASS" in progress_line(boot, {"exit_code": 0, "outcome": "PASS", "seconds": 1.0})
    assert "ERROR KilledWorker" in progress_line(boot, {"error": "KilledWorker: x"})


def test_local_size() -> None:
    assert local_size(2) == 1
    assert local_size(16) == 8
    assert local_size(16, tasks_wanted=3) == 3
    assert local_size(1) == 1
