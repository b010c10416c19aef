"""Boot reports for CI: the verdicts as JSON, and JUnit XML with one testcase per check.

The JUnit layout is the one Ant's JUnit task writes and CI systems read (Jenkins, GitLab,
GitHub test reporters): <testsuites> with one <testsuite> per image (properties, testcases,
system-out, system-err). tests/data/junit.xsd is the schema the tests validate it against.
A check the image failed is a <failure>; one that could not be judged (a setup error, or the
host failed it: composer/judge/blame.py) is an <error>, typed with its reason.
"""

from __future__ import annotations

import json
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from composer.core import version
from composer.judge.run import BootResult, exit_code
from composer.judge.verdict import Check

CLASS_PREFIX = "dps-composer.boot"
# XML 1.0 forbids most C0 control characters, even escaped
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", text)


def result_dict(r: BootResult) -> dict[str, Any]:
    d: dict[str, Any] = {"image": str(r.image), "name": r.name, "mode": r.mode}
    d["started"] = r.started
    d.update(r.verdict.to_dict())
    d["exit_code"] = r.exit_code
    d["composer"] = version.current().to_dict()
    return d


def verdicts_document(results: Sequence[BootResult]) -> dict[str, Any]:
    """One image: its verdict object (as always); several: {"passed", "images": [...]}."""
    if len(results) == 1:
        return result_dict(results[0])
    return {
        "passed": all(r.verdict.passed for r in results),
        "exit_code": exit_code(results),
        "composer": version.current().to_dict(),
        "images": [result_dict(r) for r in results],
    }


def verdicts_json(results: Sequence[BootResult]) -> str:
    return json.dumps(verdicts_document(results), indent=2)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def _error_type(r: BootResult, c: Check) -> str | None:
    """The <error> type of a check that could not be judged; None for a real failure."""
    if r.mode == "error":
        return c.name
    return c.host_fault or None


def _mark(r: BootResult, c: Check) -> str:
    if c.passed:
        return "PASS"
    return "ERROR" if _error_type(r, c) else "FAIL"


def _suite(r: BootResult, index: int, hostname: str) -> ET.Element:
    v = r.verdict
    failing = [c for c in v.checks if not c.passed]
    errors = sum(1 for c in failing if _error_type(r, c))
    failures = len(failing) - errors
    total = v.timings.get("total", 0.0)
    suite = ET.Element(
        "testsuite",
        {
            "name": r.name,
            "package": CLASS_PREFIX,
            "id": str(index),
            "tests": str(len(v.checks)),
            "failures": str(failures),
            "errors": str(errors),
            "skipped": "0",
            "time": _fmt(total),
            "timestamp": r.started or datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": hostname,
        },
    )
    props = ET.SubElement(suite, "properties")
    facts = {
        "image": str(r.image),
        "mode": r.mode,
        "outcome": v.outcome,
        "firmware": v.firmware or "",
        "accelerator": v.accel or "",
        "serial_log": str(v.serial_log or ""),
        "host_fault": (v.host_fault or {}).get("reason", ""),
        "attempts": str(len(v.attempts) + 1),
        "composer.version": version.current().version,
        "composer.commit": version.current().commit or "",
    }
    facts.update({f"timing.{k}": _fmt(t) for k, t in sorted(v.timings.items())})
    for name, value in facts.items():
        ET.SubElement(props, "property", {"name": name, "value": _xml_text(value)})
    classname = f"{CLASS_PREFIX}.{r.name}"
    for c in v.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": c.name,
                "classname": classname,
                "time": _fmt(total if c.name == "booted" else 0.0),
            },
        )
        if not c.passed:
            err_type = _error_type(r, c)
            kind, typ = ("error", err_type) if err_type else ("failure", c.name)
            el = ET.SubElement(case, kind, {"message": _xml_text(c.detail[:1000]), "type": typ})
            el.text = _xml_text(c.detail)
    out = [f"{_mark(r, c)} {c.name}: {c.detail}" for c in v.checks]
    ET.SubElement(suite, "system-out").text = _xml_text("\n".join([*out, *v.notes]))
    tail = "" if v.passed else "\n".join(v.serial_tail)
    ET.SubElement(suite, "system-err").text = _xml_text(tail)
    return suite


def junit_xml(results: Sequence[BootResult], hostname: str | None = None) -> str:
    host = hostname or socket.gethostname() or "localhost"
    root = ET.Element("testsuites", {"name": "dps-composer boot"})
    suites = [_suite(r, i, host) for i, r in enumerate(results)]
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    root.set("time", _fmt(sum(float(s.get("time", "0")) for s in suites)))
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
