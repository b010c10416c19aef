"""`boot --report`: the HTML page rendered from a recorded boot (tests/data/boot-report: the
verdict, manifest and serial log of a real boot of the default image, whose PCR 7 differed
from the prediction), checked for content, and loaded in headless chromium."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from composer.judge.report_html import (
    ImageReport,
    render_page,
    segments,
    serial_lines,
    write_reports,
)
from composer.manifest.load import read_manifest

from . import browser

DATA = Path(__file__).parents[2] / "data" / "boot-report"
MANIFEST = read_manifest(DATA / "debian-uki-sdboot.manifest.json")


def recorded(kind: str = "fail") -> ImageReport:
    verdict: dict[str, Any] = json.loads((DATA / f"verdict-{kind}.json").read_text())
    serial = (DATA / f"serial-{kind}.log").read_text(errors="replace")
    return ImageReport("debian-uki-sdboot.qcow2", verdict, MANIFEST, serial)


def test_the_page_shows_checks_timeline_disk_pcrs_stages_and_log() -> None:
    page = render_page(recorded())
    assert '<span class="outcome fail">FAIL</span>' in page
    assert re.search(r'class="mark FAIL">FAIL</td><td>pcr-7</td>', page)
    # the first differing event, from the PCR check
    assert "firmware log event 1: predicted EV_EFI_VARIABLE_DRIVER_CONFIG SecureBoot" in page
    for phase in ("firmware", "loader", "kernel", "initrd", "userspace", "check"):
        assert f'<a href="#m-{phase}">' in page and f'id="m-{phase}"' in page, phase
    assert page.count('<g class="partition">') == 2  # esp and root, to scale
    assert "root-x86-64 ext4 1.7 GiB [grow-fs]" in page
    assert "<td>root</td><td>22.6</td><td>miss</td>" in page  # stage, seconds, cache
    assert "\x1b" not in page and "\r" not in page
    assert "<script" not in page  # self-contained and static


def test_timeline_phases_follow_the_milestones() -> None:
    timings = recorded("pass").verdict["timings"]
    segs = segments(timings)
    assert [s.phase for s in segs] == [
        "firmware", "loader", "kernel", "initrd", "userspace", "check", "power-off"
    ]  # fmt: skip
    assert all(a.end == b.start for a, b in zip(segs, segs[1:], strict=False))
    assert segs[0].start == 0 and segs[-1].end == timings["power-off"]


def test_values_are_escaped() -> None:
    report = recorded()
    report.verdict = copy.deepcopy(report.verdict)
    report.verdict["checks"][0]["detail"] = "<script>alert(1)</script>"
    page = render_page(report)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_serial_log_is_cleaned_and_milestones_anchored() -> None:
    lines = serial_lines("\x1b[0;1mBdsDxe: loading Boot0001\r\n\x1b[2Jplain\r\nLinux version 6.1\n")
    assert [(ln.text, ln.anchor) for ln in lines] == [
        ("BdsDxe: loading Boot0001", "m-firmware"),
        ("plain", ""),
        ("Linux version 6.1", "m-kernel"),
    ]


def test_without_a_manifest_the_page_says_so() -> None:
    report = recorded()
    report.manifest = None
    page = render_page(report)
    assert "No manifest" in page and '<g class="partition">' not in page


def test_several_images_get_an_index(tmp_path: Path) -> None:
    second = recorded("pass")
    second.name = "other/debian-uki-sdboot.qcow2"
    written = write_reports(tmp_path, [recorded(), second])
    index = (tmp_path / "index.html").read_text()
    assert [p.name for p in written] == [
        "index.html",
        "debian-uki-sdboot.qcow2.html",
        "other_debian-uki-sdboot.qcow2.html",
    ]
    for page in written[1:]:
        assert f'href="{page.name}"' in index
    assert "FAIL" in index and "PASS" in index and "pcr-7" in index


def test_one_image_is_the_index(tmp_path: Path) -> None:
    assert write_reports(tmp_path / "new", [recorded()]) == [tmp_path / "new" / "index.html"]


needs_chromium = pytest.mark.skipif(browser.CHROMIUM is None, reason="needs Debian's chromium")


@needs_chromium
def test_the_page_loads_in_chromium_without_errors_and_is_not_blank(tmp_path: Path) -> None:
    (page,) = write_reports(tmp_path, [recorded()])
    loaded = browser.load(page, (900, 1100))
    assert loaded.console == []
    seen = browser.colours(loaded.png)
    white = seen.get(b"\xff\xff\xff", 0)
    assert len(seen) > 20 and white < 0.95 * sum(seen.values())
    assert b"\xc1\x12\x1f" in seen  # the FAIL badge's red


@needs_chromium
def test_the_browser_check_catches_errors_and_blank_pages(tmp_path: Path) -> None:
    """The checks above can fail: a page with a script error, and a blank page."""
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction()</script></body></html>")
    loaded = browser.load(broken, (300, 300))
    assert any("undefinedFunction" in line for line in loaded.console)
    assert set(browser.colours(loaded.png)) == {b"\xff\xff\xff"}
