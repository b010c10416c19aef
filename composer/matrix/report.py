"""What a matrix run reports: one record per cell (OUT/cells/CELL/report.json with the cell's
blueprint beside it), the summary (rows for a table, JSON), a JUnit file with one test case
per cell, and the run's exit code."""

from __future__ import annotations

import json
import re
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from composer.core.files import atomic_write
from composer.matrix.graph import Graph
from composer.matrix.run import Outcome, cell_status

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
CLASS_PREFIX = "dps-composer.matrix"


def cell_record(graph: Graph, cell_id: str, outcome: Outcome) -> dict[str, Any]:
    cell = next(c for c in graph.cells if c.id == cell_id)
    status, code = cell_status(graph, cell_id, outcome.results)
    return {
        "cell": cell.id,
        "values": dict(cell.values),
        "action": cell.action,
        "status": status,
        "exit_code": code,
        "tasks": {t: outcome.results.get(t) for t in graph.cell_tasks[cell.id]},
    }


def write_cells(graph: Graph, outcome: Outcome, out: Path) -> list[dict[str, Any]]:
    """OUT/cells/CELL/report.json (and blueprint.toml) for every cell; the records."""
    records = []
    for cell in graph.cells:
        directory = out / "cells" / cell.id
        directory.mkdir(parents=True, exist_ok=True)
        if cell.blueprint is not None:
            atomic_write(directory / "blueprint.toml", cell.blueprint)
        record = cell_record(graph, cell.id, outcome)
        atomic_write(directory / "report.json", json.dumps(record, indent=2) + "\n")
        records.append(record)
    return records


def exit_code(records: list[dict[str, Any]]) -> int:
    """0 when every cell passed; else the gravest of the cells' codes (4 boot infrastructure,
    3 tool or environment, 2 input, 1 a verdict FAIL)."""
    codes = [int(r["exit_code"]) for r in records]
    return max(codes, default=0)


def summary_rows(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(cell, action, status, build, boot) for the table."""
    rows = []
    for r in records:
        build = next((t for t in r["tasks"].values() if t and t.get("kind") == "build"), None)
        boot = next((t for t in r["tasks"].values() if t and t.get("kind") == "boot"), None)
        rows.append((r["cell"], r["action"], r["status"], _brief(build), _brief(boot)))
    return rows


def _brief(result: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    if result.get("error") or result.get("skipped"):
        return str(result.get("error") or result.get("skipped"))[:60]
    what = result.get("outcome") or f"exit {result.get('exit_code')}"
    hits = [s for s, v in (result.get("cache") or {}).items() if v == "hit"]
    return f"{what}, {result.get('seconds')} s" + (f", cached: {'+'.join(hits)}" if hits else "")


def _text(value: str) -> str:
    return _NOT_XML.sub("?", value)


def junit_xml(graph: Graph, records: list[dict[str, Any]], seconds: float) -> str:
    """One testsuite for the matrix, one testcase per cell."""
    failures = sum(1 for r in records if r["status"] == "FAIL")
    errors = sum(1 for r in records if r["status"] == "ERROR")
    skipped = sum(1 for r in records if r["status"] == "SKIPPED")
    root = ET.Element("testsuites", {"name": f"dps-composer matrix {graph.name}"})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": graph.name,
            "package": CLASS_PREFIX,
            "id": "0",
            "tests": str(len(records)),
            "failures": str(failures),
            "errors": str(errors),
            "skipped": str(skipped),
            "time": f"{seconds:.3f}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
            "hostname": socket.gethostname() or "localhost",
        },
    )
    ET.SubElement(suite, "properties")
    for r in records:
        spent = sum(float((t or {}).get("seconds") or 0.0) for t in r["tasks"].values())
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": r["cell"],
                "classname": f"{CLASS_PREFIX}.{graph.name}",
                "time": f"{spent:.3f}",
            },
        )
        detail = _text(json.dumps(r["tasks"], indent=1))
        if r["status"] in ("FAIL", "ERROR"):
            kind = "failure" if r["status"] == "FAIL" else "error"
            el = ET.SubElement(
                case, kind, {"message": _text(_first_problem(r)), "type": r["status"]}
            )
            el.text = detail
        elif r["status"] == "SKIPPED":
            ET.SubElement(case, "skipped", {"message": _text(_first_problem(r))})
    lines = [f"{r['status']} {r['cell']} ({r['action']})" for r in records]
    ET.SubElement(suite, "system-out").text = "\n".join(lines)
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _first_problem(record: dict[str, Any]) -> str:
    for t in record["tasks"].values():
        if t and (t.get("error") or t.get("exit_code") not in (0, None)):
            return str(
                t.get("error") or f"{t.get('kind')} exit {t.get('exit_code')}: {t.get('log', '')}"
            )[:1000]
    return str(record["status"])
