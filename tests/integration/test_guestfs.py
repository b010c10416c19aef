"""libguestfs as the composer runs it: the appliance's temporary directory is a scratch
directory of the composer, so when the composer is killed (SIGKILL: no cleanup runs)
its appliance stops and the next command removes what it left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.core.workdir import remove_stale

from .conftest import ROOT

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from composer.toolchain.guestfs import handle
    with handle() as g:
        g.add_drive_scratch(16 << 20)
        g.launch()
        found = [str(p) for p in Path(g.get_tmpdir()).rglob("*")]
        print(g.get_tmpdir(), *found, flush=True)
        time.sleep(600)
    """
)


def appliances_in(scratch: Path) -> list[int]:
    """The processes whose command line names ``scratch`` (the appliance's QEMU)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(scratch) in (proc / "cmdline").read_text():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.fixture()
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gfs-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_killed_composer_leaves_no_appliance_and_the_next_command_sweeps(work: Path) -> None:
    env = {**os.environ, "DPS_COMPOSER_WORK_DIR": str(work)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        said = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    scratch, found = Path(said[0]), said[1:]
    assert scratch.parent == work and scratch.name.startswith("dps-composer-guestfs-")
    assert any(f.endswith("/scratch1.img") for f in found), found  # libguestfs's temporaries
    deadline = time.monotonic() + 60
    while appliances_in(scratch) and time.monotonic() < deadline:
        time.sleep(0.5)  # libguestfs's recovery process stops QEMU once its parent is gone
    assert appliances_in(scratch) == []
    assert scratch.exists()  # nothing of the killed process's cleanup ran
    assert remove_stale(work) == [scratch]
    assert list(work.iterdir()) == []
