"""Progress in a CI log: plain stage lines written as they happen, never wrapped; the boot
heartbeat; --progress, -q."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress, TextColumn

from composer.cli.progress import (
    Heartbeat,
    PlainReports,
    ProgressMode,
    RichReports,
    _SizedBar,
    resolve_mode,
)
from composer.core.progress import Advance, Phase

from ..cli_run import ROOT

CHILD = textwrap.dedent(
    """
    import sys
    from composer.cli.progress import plain_stage
    with plain_stage(sys.argv[1]) as report:
        sys.stdin.readline()  # the test has read the start line: the stage may end
        report.state = "cached"
    try:
        with plain_stage("disk"):
            sys.stdin.readline()
            raise RuntimeError("mkfs died")
    except RuntimeError:
        pass
    try:
        with plain_stage("image"):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    """
)


def run_child(name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, name],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    )


def test_stage_lines_come_as_the_stage_starts_and_ends() -> None:
    """The start line is read from the pipe while the stage still waits for us: written and
    flushed at once, not when the command ends."""
    child = run_child("root")
    assert child.stdin is not None and child.stderr is not None
    try:
        started = child.stderr.readline()
        assert started.rstrip().endswith("stage root: started") and child.poll() is None
        child.stdin.write("\n")
        child.stdin.flush()
        ended = child.stderr.readline()
        assert " stage root: cached in " in ended and ended.rstrip().endswith(" s")
        assert child.stderr.readline().rstrip().endswith("stage disk: started")
        child.stdin.write("\n")
        child.stdin.flush()
        assert " stage disk: FAILED after " in child.stderr.readline()  # not like a finished one
        assert child.stderr.readline().rstrip().endswith("stage image: started")
        assert " stage image: interrupted after " in child.stderr.readline()
    finally:
        child.kill()
        child.wait()


def test_long_lines_are_not_wrapped() -> None:
    name = "a-stage-with-a-name-much-longer-than-eighty-columns-" * 3
    child = run_child(name)
    out, errors = child.communicate("\n\n", timeout=60)
    lines = errors.splitlines()
    assert lines[0].endswith(f"stage {name}: started") and lines[1].find(f"stage {name}:") > 0


def test_auto_is_plain_without_a_terminal_and_quiet_is_none() -> None:
    assert resolve_mode(ProgressMode.auto, quiet=False) is ProgressMode.plain  # pytest's stderr
    assert resolve_mode(ProgressMode.rich, quiet=True) is ProgressMode.none
    assert resolve_mode(ProgressMode.plain, quiet=False) is ProgressMode.plain


def test_heartbeat_says_the_last_milestone_during_silence() -> None:
    shown: list[str] = []
    beat_seen = threading.Event()

    def show(line: str) -> None:
        shown.append(line)
        if "still running" in line:
            beat_seen.set()

    with Heartbeat(show, every=0.2, prefix="[a.qcow2] ") as beat:
        beat.line("    5.0s  firmware: BdsDxe: loading Boot0001")
        beat.line("   12.5s  kernel: Linux version 6.12")
        beat.line("some console output")
        assert beat_seen.wait(30)
    assert shown[:3] == [
        "[a.qcow2]     5.0s  firmware: BdsDxe: loading Boot0001",
        "[a.qcow2]    12.5s  kernel: Linux version 6.12",
        "[a.qcow2] some console output",
    ]
    beat_line = next(line for line in shown if "still running" in line)
    assert beat_line.startswith("[a.qcow2] still running: ")
    assert beat_line.endswith("last milestone: kernel at 12.5 s")


def test_heartbeat_stops_with_its_block() -> None:
    with Heartbeat(lambda line: None, every=0.1) as beat:
        pass
    assert not beat._thread.is_alive()


@pytest.mark.parametrize("option", ["--progress=bogus", "--progress"])
def test_progress_values_are_checked(option: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "composer", "build", str(tmp_path / "bp.toml"), option],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2


def test_a_download_shows_a_line_at_each_quarter_and_phases_as_they_come(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In a CI log a download is a handful of lines (start, quarters, end), not a stream."""
    reports = PlainReports("package-check")
    for done in (0, 10, 300, 520, 600, 999, 1000, 1000):
        reports(Advance("downloading 3 packages", done * 1024, 1000 * 1024))
    reports(Phase("extracting archives..."))
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        f"stage package-check: downloading 3 packages: {p}% of 1000.0 KiB"
        for p in (0, 25, 50, 75, 100)
    ] + ["stage package-check: extracting archives..."]


def test_on_a_terminal_a_download_gets_a_bar_and_a_phase_names_the_stage_row() -> None:
    console = Console(record=True, force_terminal=True, width=120)
    bars = Progress(TextColumn("{task.description}"), _SizedBar(), console=console)
    stage = bars.add_task("root", total=1)
    reports = RichReports(bars, "root", stage)
    reports(Phase("extracting archives..."))
    reports(Advance("downloading 3 packages", 512 * 1024, 1024 * 1024))
    assert [t.description for t in bars.tasks] == [
        "root: extracting archives...",
        "  downloading 3 packages: 512.0 KiB of 1.0 MiB",
    ]
    console.print(bars.get_renderable())
    stage_row, download_row = console.export_text().splitlines()
    assert "━" not in stage_row and "━" in download_row  # a bar for the download only
    reports(Advance("downloading 3 packages", 1024 * 1024, 1024 * 1024))
    assert bars.tasks[1].finished and not bars.tasks[0].finished
