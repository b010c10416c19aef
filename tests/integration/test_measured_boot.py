"""Measured boot proved on real boots, and the reports CI reads.

One `dps-composer boot -j 2` run boots the default image and a copy whose UKI command line was
altered after the manifest was written, at the same time, each with its own swtpm and varstore:
- the default image's live PCR 4, 7 and 11 equal the manifest's predictions (event by event in
  the firmware log; PCR 7 as the firmware that ran measures it: composer/judge/firmware_pcrs.py),
  and it passes;
- the altered image fails on PCR 11, naming both values and the .cmdline event;
- neither TPM saw the other's measurements (each image's PCR 11 equals its own UKI's prediction);
- the JSON (`--json=short` on stdout, `--json-file`), JUnit and HTML reports cover both images
  and validate against their schemas (tests/data/cli-json-schemas.json, tests/data/junit.xsd).

It is the suite's one `dps-composer boot` of the default image, as built, that runs to its PASS:
every check of that PASS is asserted here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pefile
import pytest
import xmlschema
from unit.judge import browser  # tests/ is on sys.path (pytest)

from composer.image.read import MTOOLS_ENV, read_vfat_file
from composer.judge import firmware_pcrs
from composer.judge.report_html import page_name
from composer.measure.pcr11 import PHASES, predict_uki
from composer.measure.pcrdiff import first_difference
from composer.spec import eventlog

from .conftest import ROOT, ModuleTmp, cli_json_schema, composer, manifest, manifest_path

pytestmark = pytest.mark.integration
NAME = "debian-uki-sdboot"
SCHEMA = ROOT / "tests" / "data" / "junit.xsd"


def alter_uki_cmdline(raw: Path, m: dict[str, Any], old: bytes, new: bytes) -> bytes:
    """Patch the UKI's .cmdline section bytes in place on the ESP (same length, no re-signing);
    returns the altered UKI."""
    assert len(old) == len(new)
    offset, path = m["disk"]["partitions"][0]["offset"], m["uki"]["path"]
    uki = bytearray(read_vfat_file(raw, offset, path))
    pe = pefile.PE(data=bytes(uki), fast_load=True)
    (sec,) = [s for s in pe.sections if s.Name.rstrip(b"\0") == b".cmdline"]
    start = sec.PointerToRawData + bytes(uki[sec.PointerToRawData :]).index(old)
    assert start < sec.PointerToRawData + sec.SizeOfRawData
    uki[start : start + len(old)] = new
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "uki.efi"
        local.write_bytes(uki)
        subprocess.run(
            ["mcopy", "-o", "-i", f"{raw}@@{offset}", str(local), f"::/{path}"],
            check=True,
            env={**os.environ, **MTOOLS_ENV},
        )
    assert read_vfat_file(raw, offset, path) == bytes(uki)
    return bytes(uki)


@pytest.fixture(scope="module")
def pair(default_image: Path, module_tmp: ModuleTmp) -> dict[str, Any]:
    work = module_tmp.mktemp("measured")
    altered_dir = work / "altered"
    altered_dir.mkdir()
    altered = altered_dir / "altered.raw"
    shutil.copyfile(default_image / f"{NAME}.raw", altered)
    uki = alter_uki_cmdline(altered, manifest(default_image), b"console=tty0", b"console=tty1")
    (work / "altered.efi").write_bytes(uki)
    proc = composer(
        "boot",
        "-j",
        "2",
        str(default_image / f"{NAME}.qcow2"),
        str(altered),
        "--json=short",
        "--json-file",
        str(work / "verdicts.json"),
        "--report",
        str(work / "report"),
        "--junit",
        str(work / "report.xml"),
        "--keep",
        str(work / "keep"),
        "--timeout",
        "1200",  # two TCG guests share the CPUs; an upper bound, not a wait
        "--manifest",  # the altered copy is judged against the original's manifest
        str(manifest_path(default_image)),
        check=False,
    )
    doc = json.loads((work / "verdicts.json").read_text())
    by_name = {i["name"]: i for i in doc["images"]}
    return {
        "proc": proc,
        "doc": doc,
        "default": by_name[f"{NAME}.qcow2"],
        "altered": by_name["altered.raw"],
        "work": work,
        "manifest": manifest(default_image),
    }


def replay(events: list[dict[str, Any]]) -> str:
    pcr = bytes(32)
    for event in events:
        pcr = hashlib.sha256(pcr + bytes.fromhex(event["digest"])).digest()
    return pcr.hex()


def checks(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in verdict["checks"]}


def live_pcrs(verdict: dict[str, Any]) -> dict[str, str]:
    return {k: v.lower() for k, v in verdict["guest"]["tpm"]["pcrs"].items()}


def log_events(verdict: dict[str, Any]) -> list[eventlog.Event]:
    return eventlog.parse(eventlog.decode_transport(verdict["guest"]["eventlog"]))


def test_exit_code_and_both_images_reported(pair: dict[str, Any]) -> None:
    assert pair["proc"].returncode == 1  # one image fails
    assert pair["doc"]["passed"] is False
    assert [i["passed"] for i in pair["doc"]["images"]] == [True, False]
    out = pair["proc"].stdout + pair["proc"].stderr
    assert f"[{NAME}.qcow2]" in out and "[altered.raw]" in out


def predicted_events(verdict: dict[str, Any], m: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The manifest's predicted events of PCR ``n``, for the firmware the boot ran: one built
    without Secure Boot support (trixie's OVMF_CODE_4M.fd) has no SecureBoot variable."""
    events: list[dict[str, Any]] = m["measured_boot"]["pcrs"][str(n)]["events"]
    if n == 7 and any(firmware_pcrs.NOTE in note for note in verdict["notes"]):
        return firmware_pcrs.without_secure_boot_variable(events)
    return events


def test_default_image_live_pcrs_equal_predictions(pair: dict[str, Any]) -> None:
    verdict, m = pair["default"], pair["manifest"]
    assert verdict["passed"], verdict["checks"]
    got = checks(verdict)
    for n in ("4", "7", "11"):
        assert got[f"pcr-{n}"]["passed"], got[f"pcr-{n}"]
        want = m["expect"]["pcrs"][n] if n != "7" else replay(predicted_events(verdict, m, 7))
        assert live_pcrs(verdict)[n] == want
    assert m["expect"]["pcrs"]["7"] == replay(m["measured_boot"]["pcrs"]["7"]["events"])
    assert m["expect"]["pcrs"]["11"] == m["pcr11"]["phases"]["sha256"][PHASES[-1]]
    events = log_events(verdict)
    for index in (4, 7):
        predicted = predicted_events(verdict, m, index)
        assert first_difference(predicted, eventlog.for_pcr(events, index)) is None
    stub = m["measured_boot"]["pcrs"]["11"]["events"]
    assert first_difference(stub, eventlog.for_pcr(events, 11), prefix_only=True) is None
    # the log the guest sent replays to the PCRs its TPM reported
    replayed = eventlog.replay(events)
    for index in range(8):
        assert replayed[index] == live_pcrs(verdict)[str(index)], index


def test_altered_cmdline_fails_on_pcr11(pair: dict[str, Any]) -> None:
    verdict, m = pair["altered"], pair["manifest"]
    assert verdict["passed"] is False
    got = checks(verdict)
    pcr11 = got["pcr-11"]
    assert not pcr11["passed"]
    live = live_pcrs(verdict)["11"]
    assert live in pcr11["detail"] and m["expect"]["pcrs"]["11"] in pcr11["detail"]
    assert ".cmdline" in pcr11["detail"], pcr11["detail"]
    assert "FAIL [altered.raw] pcr-11: " in pair["proc"].stderr  # human lines: stderr
    # PCR 4 changes too (the UKI's Authenticode hash); the detail names the UKI event
    assert not got["pcr-4"]["passed"] and "UKI" in got["pcr-4"]["detail"]
    # everything else about the boot is fine
    assert got["root-discovered"]["passed"] and got["pcr-7"]["passed"]


def test_no_interference_between_the_two_tpms(pair: dict[str, Any]) -> None:
    """Each TPM holds exactly its own image's measurements."""
    altered_uki = pair["work"] / "altered.efi"
    assert live_pcrs(pair["altered"])["11"] == predict_uki(altered_uki)["sha256"][PHASES[-1]]
    assert live_pcrs(pair["default"])["11"] == pair["manifest"]["expect"]["pcrs"]["11"]
    keep = pair["work"] / "keep"
    assert (keep / f"{NAME}.qcow2" / "serial.log").is_file()
    assert (keep / "altered.raw" / "serial.log").is_file()
    # the boots overlapped: the second started before the first ended, one vCPU each
    a, b = pair["default"], pair["altered"]
    assert "vCPUs: 1" in a["notes"] and "vCPUs: 1" in b["notes"]
    assert a["started"] and b["started"]
    starts = sorted([a, b], key=lambda v: v["started"])
    first_end = starts[0]["timings"]["total"]
    from datetime import datetime

    gap = (
        datetime.fromisoformat(starts[1]["started"]) - datetime.fromisoformat(starts[0]["started"])
    ).total_seconds()
    assert gap < first_end


def test_junit_report_and_timings(pair: dict[str, Any]) -> None:
    xml = (pair["work"] / "report.xml").read_text()
    xmlschema.XMLSchema(str(SCHEMA)).validate(xml)
    assert xml.count("<testsuite ") == 2
    assert 'name="pcr-11"' in xml and "<failure" in xml
    timings = pair["default"]["timings"]
    for phase in ("guest-kernel", "guest-initrd", "guest-userspace"):
        assert timings[phase] > 0, timings
    assert 'name="timing.guest-userspace"' in xml


def test_json_and_html_reports(pair: dict[str, Any]) -> None:
    """`--json=short` prints the `--json-file` document alone on stdout; both documents follow
    the published schema; the same checks ran on both images, each saying how long its VM
    waited for a host CPU, from a framed check record."""
    doc = pair["doc"]
    assert doc["exit_code"] == 1
    assert json.loads(pair["proc"].stdout) == doc
    jsonschema.validate(doc, cli_json_schema("boot-many"))
    for one in doc["images"]:
        jsonschema.validate(one, cli_json_schema("boot-one"))
    default, altered = pair["default"], pair["altered"]
    assert [c["name"] for c in default["checks"]] == [c["name"] for c in altered["checks"]]
    assert default["outcome"] == "pass" and altered["outcome"] == "fail"
    got = checks(default)
    for name in ("root-discovered", "no-failed-units", "tpm", "pcr-11"):
        assert got[name]["passed"], got[name]
    for verdict in (default, altered):
        assert "cpu-wait" in verdict["timings"]
        assert not any("older check script" in n for n in verdict["notes"])  # a framed record
    check_html_report(pair["work"] / "report", {f"{NAME}.qcow2": "PASS", "altered.raw": "FAIL"})


def check_html_report(directory: Path, outcomes: dict[str, str]) -> None:
    """`boot --report`: an index and a page per image, each with its outcome, checks, timeline,
    partition map and serial log; the index loads in chromium without console errors."""
    pages = sorted(p for p in directory.glob("*.html") if p.name != "index.html")
    assert [p.name for p in pages] == sorted(page_name(name) for name in outcomes)
    index = (directory / "index.html").read_text()
    for name, outcome in outcomes.items():
        text = (directory / page_name(name)).read_text()
        assert f'href="{page_name(name)}"' in index
        assert f"<title>{outcome} {name}: " in text, (name, outcome)
        assert 'class="timeline"' in text and 'class="partition-map"' in text
        assert 'id="m-kernel"' in text and "\x1b" not in text
    if browser.CHROMIUM is not None:
        for page in (directory / "index.html", pages[0]):
            assert browser.load(page, (800, 800)).console == [], page
