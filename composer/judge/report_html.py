"""`boot --report DIR`: a self-contained HTML page per booted image (no scripts, no external
files: CSS and SVG inline), and an index page when several images were booted.

Everything on the page comes from what a boot already recorded: the verdict (as in
``verdict.json``: checks, milestone timings, the guest's PCRs), the image's manifest (the
partitions, the predicted PCRs, the build's stages and their stage cache use) and the serial
log (ANSI sequences and carriage returns removed, the first line of each milestone anchored).
So a report can be rendered again later from a kept boot directory, without booting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from composer import DATA
from composer.core import version
from composer.core.files import atomic_write
from composer.core.units import human_size
from composer.inspect.partition_map import MapPartition, partition_svg
from composer.judge.serial import MILESTONES, clean_lines
from composer.manifest.model import Manifest

TEMPLATES = DATA / "templates"
# the boot's phases on the timeline: (phase, milestone it starts at, milestone it ends at);
# a phase whose milestones were not seen is left out
PHASES = (
    ("firmware", None, "loader"),
    ("loader", "loader", "kernel"),
    ("kernel", "kernel", "initrd"),
    ("initrd", "initrd", "root-mounted"),
    ("userspace", "root-mounted", "multi-user"),
    ("check", "multi-user", "check"),
    ("power-off", "check", "power-off"),
)
COLOURS = {
    "firmware": "#f2c14e",
    "loader": "#f4a261",
    "kernel": "#e76f51",
    "initrd": "#9d4edd",
    "userspace": "#5b8def",
    "check": "#2a9d8f",
    "power-off": "#adb5bd",
}
# where the initrd takes over on the console (the kernel's message, linux/init/main.c)
INITRD_STARTS = ("initrd", re.compile(r"Run /init as init process"))
_PCR_DETAIL = re.compile(r"^PCR \d+ = [0-9a-fA-F]+(?:, expected ([0-9a-fA-F]+))?(?:; (.*))?$", re.S)


@dataclass(frozen=True)
class Segment:
    phase: str
    start: float
    end: float


def milestones(timings: dict[str, float]) -> dict[str, float]:
    """The verdict's milestone times, with the kernel-to-initrd boundary the guest measured
    (systemd-analyze's kernel time after the kernel's first line)."""
    found = {name: t for name, t in timings.items() if name in dict(MILESTONES)}
    if "kernel" in found and "guest-kernel" in timings:
        found["initrd"] = found["kernel"] + timings["guest-kernel"]
    return found


def segments(timings: dict[str, float]) -> list[Segment]:
    at = milestones(timings)
    out = []
    for phase, start, end in PHASES:
        t0 = 0.0 if start is None else at.get(start)
        t1 = at.get(end)
        if t0 is not None and t1 is not None and t1 >= t0:
            out.append(Segment(phase, t0, t1))
    return out


def timeline_svg(segs: list[Segment], total: float, width: int = 960) -> str:
    """The phases as boxes on one time axis (seconds since QEMU started), each linked to its
    milestone in the serial log below."""
    span = max([total, *(s.end for s in segs), 1.0])
    scale = width / span
    boxes = []
    for row, s in enumerate(segs):
        x, w = s.start * scale, max(2.0, (s.end - s.start) * scale)
        label = f"{s.phase} {s.end - s.start:.1f} s"
        boxes.append(
            f'<a href="#m-{s.phase}"><g class="phase"><title>{label} '
            f"({s.start:.1f}–{s.end:.1f} s)</title>"
            f'<rect x="{x:.1f}" y="24" width="{w:.1f}" height="30" '
            f'fill="{COLOURS.get(s.phase, "#ccc")}" stroke="#333"/>'
            f'<text x="{min(x, width - 150):.1f}" y="{72 + 15 * row}" font-size="12">'
            f"{label}</text></g></a>"
        )
    ticks = []
    step = next(t for t in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1e9) if span / t <= 12)
    t = 0.0
    while t <= span:
        x = t * scale
        ticks.append(
            f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="58" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="14" font-size="11" text-anchor="middle">{t:.0f} s</text>'
        )
        t += step
    height = 80 + 15 * len(segs)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width + 40}" '
        f'height="{height}" viewBox="-20 0 {width + 40} {height}" role="img" '
        f'aria-label="boot timeline" font-family="sans-serif">{"".join(ticks)}'
        f"{''.join(boxes)}</svg>"
    )


@dataclass
class PcrRow:
    pcr: str
    predicted: str
    measured: str
    checked: bool  # a pcr-N check judged it
    matches: bool | None  # the check's result, else the comparison; None: nothing to compare
    first_difference: str = ""


def pcr_rows(verdict: dict[str, Any], manifest: Manifest | None) -> list[PcrRow]:
    """Predicted (the manifest) against measured (the guest's TPM), with the first event that
    differs as the PCR check found it."""
    guest = verdict.get("guest") or {}
    measured = {k: str(v).lower() for k, v in ((guest.get("tpm") or {}).get("pcrs") or {}).items()}
    predicted: dict[str, str] = {}
    if manifest is not None:
        for pcr, entry in manifest.measured_boot.pcrs.items():
            if entry.value:
                predicted[pcr] = entry.value
        predicted.update(manifest.expect.pcrs)
    checks = {c["name"]: c for c in verdict.get("checks", [])}
    rows = []
    for pcr in sorted(set(predicted) | set(checks_pcrs(checks)), key=int):
        value = predicted.get(pcr, "")
        got = measured.get(pcr, "")
        check = checks.get(f"pcr-{pcr}")
        diff = ""
        if check is not None and not check["passed"]:
            found = _PCR_DETAIL.match(check["detail"])
            diff = (found.group(2) or "") if found else check["detail"]
        if check is not None:  # the verdict's judgement (it knows what is enforced)
            matches: bool | None = bool(check["passed"])
        else:
            matches = (got == value.lower()) if got and value else None
        rows.append(PcrRow(pcr, value, got, check is not None, matches, diff))
    return rows


def checks_pcrs(checks: dict[str, Any]) -> list[str]:
    return [name.removeprefix("pcr-") for name in checks if re.fullmatch(r"pcr-\d+", name)]


@dataclass
class StageRow:
    name: str
    seconds: float
    cache: str  # hit, miss, off, or "" for stages the cache does not hold


def stage_rows(manifest: Manifest | None) -> list[StageRow]:
    if manifest is None:
        return []
    return [
        StageRow(name, seconds, manifest.cache.get(name, ""))
        for name, seconds in manifest.timings.items()
    ]


@dataclass
class SerialLine:
    number: int
    text: str
    anchor: str = ""  # m-<phase or milestone> on the first line of a milestone


def serial_lines(text: str) -> list[SerialLine]:
    """The log as a person reads it: no ANSI, no CR; the first line of each milestone (and of
    the phase it starts) gets an anchor the timeline links to."""
    lines = [SerialLine(i + 1, line) for i, line in enumerate(clean_lines(text))]
    starts = {start: phase for phase, start, _ in PHASES if start}
    starts["firmware"] = "firmware"
    seen: set[str] = set()
    for line in lines:
        for name, pattern in (*MILESTONES, INITRD_STARTS):
            if name not in seen and pattern.search(line.text):
                seen.add(name)
                phase = starts.get(name)
                line.anchor = f"m-{phase}" if phase and phase != name else f"m-{name}"
                break
    return lines


@dataclass
class ImageReport:
    """Everything one page shows."""

    name: str
    verdict: dict[str, Any]
    manifest: Manifest | None
    serial: str
    file: str = "index.html"
    extra: dict[str, Any] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        v, m = self.verdict, self.manifest
        total = float(v.get("timings", {}).get("total", 0.0))
        segs = segments(v.get("timings", {}))
        disk_svg = ""
        if m is not None:
            parts = [
                MapPartition(
                    p.number,
                    p.offset,
                    p.size,
                    p.type_name,
                    p.designator,
                    p.label,
                    p.filesystem,
                    tuple(p.flags),
                )
                for p in m.disk.partitions
            ]
            disk_svg = partition_svg(m.disk.size, parts)
        return {
            "name": self.name,
            "v": v,
            "m": m,
            "outcome": _outcome(v),
            "timeline": timeline_svg(segs, total) if segs else "",
            "segments": segs,
            "disk_svg": disk_svg,
            "pcrs": pcr_rows(v, m),
            "stages": stage_rows(m),
            "serial": serial_lines(self.serial),
            "composer": version.current(),
            "human_size": human_size,
        }


def _outcome(verdict: dict[str, Any]) -> str:
    return str(verdict.get("outcome") or ("pass" if verdict.get("passed") else "fail"))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(report: ImageReport) -> str:
    return _environment().get_template("boot-report.html.j2").render(**report.context())


def render_index(reports: list[ImageReport]) -> str:
    rows = [
        {
            "name": r.name,
            "file": r.file,
            "outcome": _outcome(r.verdict),
            "failed": [c["name"] for c in r.verdict.get("checks", []) if not c["passed"]],
            "total": r.verdict.get("timings", {}).get("total"),
        }
        for r in reports
    ]
    return (
        _environment()
        .get_template("boot-index.html.j2")
        .render(rows=rows, composer=version.current())
    )


def page_name(name: str) -> str:
    """A file name for an image's page (image names may hold a parent directory)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".html"


def write_reports(directory: Path, reports: list[ImageReport]) -> list[Path]:
    """One image: DIR/index.html is its page; several: a page each and DIR/index.html."""
    directory.mkdir(parents=True, exist_ok=True)
    if len(reports) == 1:
        target = directory / "index.html"
        atomic_write(target, render_page(reports[0]))
        return [target]
    written = []
    for r in reports:
        r.file = page_name(r.name)
        atomic_write(directory / r.file, render_page(r))
        written.append(directory / r.file)
    atomic_write(directory / "index.html", render_index(reports))
    return [directory / "index.html", *written]
