"""Boot reports: the JSON verdicts and JUnit XML (validated against tests/data/junit.xsd)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from composer.core import version
from composer.judge.report import junit_xml, verdicts_json
from composer.judge.run import (
    BootOptions,
    BootResult,
    boot_many,
    exit_code,
    unique_names,
    with_retries,
)
from composer.judge.verdict import Check, Verdict

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).parents[2] / "data" / "junit.xsd"))


def result(name: str, passed: bool, mode: str = "manifest") -> BootResult:
    checks = [
        Check("booted", True, "check result received"),
        Check("pcr-11", passed, "PCR 11 = aa" + ("" if passed else ", expected bb <&>")),
    ]
    v = Verdict(
        passed,
        checks,
        timings={"total": 190.5, "guest-kernel": 10.5, "guest-userspace": 100.25},
        accel="tcg",
        firmware="/usr/share/qemu/firmware/60-edk2-x86_64.json",
        serial_tail=["last \x1b line", "reboot: Power down"],
        notes=["mode: manifest"],
    )
    return BootResult(
        Path(f"/img/{name}"), name, v, Path(f"/img/{name}.boot"), mode, "2026-11-22T05:59:01"
    )


def test_junit_validates_and_counts() -> None:
    xml = junit_xml([result("a.qcow2", True), result("b.raw", False)], hostname="ci")
    SCHEMA.validate(xml)
    root = ET.fromstring(xml)
    assert root.get("tests") == "4" and root.get("failures") == "1" and root.get("errors") == "0"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a.qcow2", "b.raw"]
    failing = suites[1].find("testcase[@name='pcr-11']/failure")
    assert failing is not None and "expected bb <&>" in (failing.get("message") or "")
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["timing.guest-kernel"] == "10.500" and props["mode"] == "manifest"
    assert props["composer.version"] == version.current().version
    assert props["composer.commit"] == (version.current().commit or "")
    assert suites[0].find("testcase[@name='booted']").get("time") == "190.500"  # type: ignore[union-attr]


def test_junit_setup_errors_are_errors() -> None:
    r = BootResult(
        Path("/x.raw"),
        "x.raw",
        Verdict(False, [Check("booted", False, "no such file")]),
        None,
        "error",
        "2026-01-01T00:00:00",
    )
    xml = junit_xml([r], hostname="h")
    SCHEMA.validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "0"


@pytest.mark.parametrize("mode", ["manifest", "cidata", "serial", "check", "error"])
@pytest.mark.parametrize("started", ["", "2026-11-22T05:59:01"])
def test_junit_is_valid_in_every_mode(mode: str, started: str) -> None:
    """Also for a result without a start time (a JUnit timestamp may not be empty)."""
    one = result("a.qcow2", False, mode)
    one.started = started
    for results in ([one], [one, result("b.raw", True, mode)]):
        SCHEMA.validate(junit_xml(results, hostname="h"))


def test_schema_rejects_a_broken_report() -> None:
    xml = junit_xml([result("a", True)], hostname="h").replace(' classname="', ' klass="')
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate(xml)


def test_json_one_and_several() -> None:
    one = json.loads(verdicts_json([result("a", True)]))
    assert (
        one["passed"] is True and one["image"] == "/img/a" and one["checks"][0]["name"] == "booted"
    )
    assert one["composer"] == version.current().to_dict()
    many = json.loads(verdicts_json([result("a", True), result("b", False)]))
    assert many["passed"] is False
    assert [i["name"] for i in many["images"]] == ["a", "b"]


def test_unique_names() -> None:
    images = [Path("/x/d.qcow2"), Path("/y/d.qcow2"), Path("/y/e.raw")]
    assert unique_names(images) == ["x/d.qcow2", "y/d.qcow2", "e.raw"]


def test_boot_many_fails_only_the_bad_images(tmp_path: Path) -> None:
    """Images that cannot be booted become failing results; nothing is started for them."""
    missing = [tmp_path / "a.raw", tmp_path / "b.qcow2"]
    lines: list[str] = []
    results = boot_many(missing, BootOptions(keep=tmp_path / "keep"), 2, lambda n: lines.append)
    assert [r.mode for r in results] == ["error", "error"]
    assert all(not r.verdict.passed for r in results)
    assert "no such image file" in results[0].verdict.checks[0].detail
    assert any(line.startswith("error:") for line in lines)
    SCHEMA.validate(junit_xml(results, hostname="h"))


def host_failed(name: str) -> BootResult:
    checks = [
        Check("booted", True, "check result received"),
        Check("no-failed-units", False, "failed: systemd-tpm2-setup-early.service", "tpm-io-error"),
    ]
    v = Verdict(False, checks, timings={"total": 100.0})
    v.host_fault = {"reason": "tpm-io-error", "detail": "the emulated TPM did not answer"}
    v.attempts = [{"attempt": 1, "outcome": "error", "reason": "tpm-io-error", "detail": "x"}]
    return BootResult(Path(f"/img/{name}"), name, v, None, "manifest", "2026-01-01T00:00:00")


def test_a_host_fault_is_a_junit_error_with_its_reason() -> None:
    xml = junit_xml([host_failed("a.qcow2"), result("b.raw", False)], hostname="h")
    SCHEMA.validate(xml)
    root = ET.fromstring(xml)
    assert root.get("errors") == "1" and root.get("failures") == "1"
    suite = root.find("testsuite[@name='a.qcow2']")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "0"
    error = suite.find("testcase[@name='no-failed-units']/error")
    assert error is not None and error.get("type") == "tpm-io-error"
    assert suite.find("testcase/failure") is None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["outcome"] == "error" and props["host_fault"] == "tpm-io-error"
    assert props["attempts"] == "2"


def test_json_says_the_outcome_and_exit_code() -> None:
    one = json.loads(verdicts_json([host_failed("a")]))
    assert one["outcome"] == "error" and one["exit_code"] == 4 and one["passed"] is False
    assert one["host_fault"]["reason"] == "tpm-io-error" and len(one["attempts"]) == 1
    many = json.loads(verdicts_json([host_failed("a"), result("b", True)]))
    assert many["exit_code"] == 4
    assert [i["outcome"] for i in many["images"]] == ["error", "pass"]


def error_result(code: int) -> BootResult:
    return BootResult(
        Path("/x"),
        "x",
        Verdict(False, [Check("booted", False, "no")]),
        None,
        "error",
        error_code=code,
    )


def test_exit_code_precedence() -> None:
    ok, bad, host = result("a", True), result("b", False), host_failed("c")
    assert exit_code([ok]) == 0 and exit_code([bad]) == 1 and exit_code([host]) == 4
    assert exit_code([ok, host]) == 4
    assert exit_code([host, bad, ok]) == 1  # a broken image outranks the host's fault
    assert exit_code([bad, error_result(3)]) == 3
    assert exit_code([error_result(3), error_result(2)]) == 2
    assert exit_code([ok, error_result(7)]) == 7  # another error's own code


def test_an_infrastructure_error_is_booted_again_and_listed(tmp_path: Path) -> None:
    outcomes = [host_failed("a").verdict, result("a", True).verdict]
    kept: list[Path | None] = []

    def boot(finish: Any) -> Verdict:
        verdict = outcomes.pop(0)
        kept.append(finish(verdict))
        return verdict

    lines: list[str] = []
    verdict = with_retries(boot, tmp_path / "keep", 1, lines.append)
    assert verdict.outcome == "pass" and kept == [tmp_path / "keep/attempt-1", tmp_path / "keep"]
    assert [a["reason"] for a in verdict.attempts] == ["tpm-io-error"]
    assert any(n.startswith("attempt 1: tpm-io-error") for n in verdict.notes)
    assert "booting again (attempt 2 of 2)" in lines[0]


def test_retries_are_bounded() -> None:
    calls: list[int] = []

    def boot(finish: Any) -> Verdict:
        calls.append(1)
        verdict = host_failed("a").verdict
        finish(verdict)
        return verdict

    verdict = with_retries(boot, None, 2, lambda _: None)
    assert len(calls) == 3 and verdict.outcome == "error" and len(verdict.attempts) == 2
