"""Progress reports from inside a stage: apt's status lines become byte counts, mmdebstrap's
phase lines become phases, and reports reach only the sink of their own context."""

from __future__ import annotations

import contextvars

from composer.core import progress
from composer.core.progress import Advance, AptDownload, Phase

# What `apt-get -oAPT::Status-Fd=1 download hello tmux vim` said on trixie (apt 3.0), verbatim.
APT_STATUS = """\
dlstatus:1:0.0000:Retrieving file 1 of 3
dlstatus:1:0.4373:Retrieving file 1 of 3
Get:1 http://deb.debian.org/debian trixie/main amd64 hello amd64 2.10-5 [53.2 kB]
dlstatus:2:8.5899:Retrieving file 2 of 3
dlstatus:3:32.9716:Retrieving file 3 of 3
dlstatus:3:100.0000:Retrieving file 3 of 3
Fetched 2214 kB in 0s (63.7 MB/s)
"""


def collected() -> tuple[list[progress.Report], progress.Sink]:
    got: list[progress.Report] = []
    return got, got.append


def test_apt_status_lines_become_bytes_and_are_consumed() -> None:
    got, sink = collected()
    with progress.shown_by(sink):
        shown = AptDownload("downloading 3 packages", 2_214_000)
        kept = [line for line in APT_STATUS.splitlines() if not shown.line(line)]
        shown.finish()
    assert kept == [
        "Get:1 http://deb.debian.org/debian trixie/main amd64 hello amd64 2.10-5 [53.2 kB]",
        "Fetched 2214 kB in 0s (63.7 MB/s)",
    ]
    done = [r.done for r in got if isinstance(r, Advance)]
    assert done == [0, 0, 9682, 190180, 729991, 2214000, 2214000]
    assert {r.total for r in got if isinstance(r, Advance)} == {2_214_000}


def test_mmdebstrap_phases_are_the_lines_that_end_with_dots() -> None:
    got, sink = collected()
    line = progress.phase_lines("I: ", "...")
    with progress.shown_by(sink):
        consumed = [
            line(text)
            for text in (
                "I: chroot architecture amd64 is equal to the host's architecture",
                "I: downloading packages with apt...",
                "I: running --setup-hook in shell: sh -c 'mkdir -p \"$1\"/efi' exec /x",
                "W: Download is performed unsandboxed as root",
                "I: extracting archives...",
            )
        ]
    assert consumed == [False] * 5  # every line stays in the build log
    assert got == [Phase("downloading packages with apt..."), Phase("extracting archives...")]


def test_reports_reach_only_their_own_context() -> None:
    got, sink = collected()
    progress.report(Phase("before"))  # no sink: nothing happens
    with progress.shown_by(sink):
        contextvars.Context().run(progress.report, Phase("another context"))
        progress.report(Phase("inside"))
    progress.report(Phase("after"))
    assert got == [Phase("inside")]
