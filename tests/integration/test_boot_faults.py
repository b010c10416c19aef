"""`boot` killed anywhere leaves nothing behind: no QEMU, no swtpm, no work directory.

The kill points are taken from the boot's own milestone output (firmware, kernel, userspace:
systemd in the initrd has mounted the root), never from sleeping. After SIGTERM, SIGHUP or
SIGINT the boot stops its VM, keeps its serial log and an "interrupted" verdict and removes its
work directory; after SIGKILL the VM dies with it (PR_SET_PDEATHSIG) and the work directory,
whose lock nobody holds any more, goes with the next boot. Every boot here is killed early.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from composer.core.workdir import LOCK_SUFFIX, unowned

from .conftest import ROOT

pytestmark = pytest.mark.integration
NAME = "debian-uki-sdboot"
PIDS = re.compile(r"\b(qemu|swtpm): pid (\d+)")
MILESTONE = r"^\s*(?:\[[^]]+\] )?\s*\d+\.\d+s  {}: "


@dataclass
class Killed:
    returncode: int
    pids: dict[str, list[int]] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)


def _gone(pid: int, deadline: float = 30.0) -> bool:
    """The process has ended (a pidfd becomes readable when it does, reaped or not)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], deadline)[0])
    finally:
        os.close(fd)


def boot_and_kill(
    args: list[str], milestone: str, sig: int, env: dict[str, str], want: int
) -> Killed:
    """Run `dps-composer boot ARGS`; when ``want`` boots have printed ``milestone``, send
    ``sig`` to the composer and wait for it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", "boot", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    killed = Killed(0)
    seen = 0
    pattern = re.compile(MILESTONE.format(re.escape(milestone)))
    for line in proc.stderr:
        killed.output.append(line.rstrip("\n"))
        for kind, pid in PIDS.findall(line):
            killed.pids.setdefault(kind, []).append(int(pid))
        if pattern.search(line):
            seen += 1
            if seen == want:
                proc.send_signal(sig)
                break
    _, rest = proc.communicate(timeout=120)
    killed.output += rest.splitlines()
    killed.returncode = proc.returncode
    print("\n".join(killed.output))
    return killed


def leftovers(work: Path) -> list[Path]:
    """Temporary directories left in ``work`` (each has its lock file beside it)."""
    left = sorted(work.glob("dps-composer-*"))
    dirs = [p for p in left if not p.name.endswith(LOCK_SUFFIX)]
    locks = [p for p in left if p.name.endswith(LOCK_SUFFIX)]
    assert [p.name.removesuffix(LOCK_SUFFIX) for p in locks] == [p.name for p in dirs]
    return dirs


def unlocked(path: Path) -> bool:
    return path in unowned(path.parent, path.name)


def assert_nothing_runs(killed: Killed, work: Path) -> None:
    assert killed.pids.get("qemu") and killed.pids.get("swtpm"), killed.output
    for kind, pids in killed.pids.items():
        for pid in pids:
            assert _gone(pid), f"{kind} {pid} outlived the killed boot"
    ps = subprocess.run(["ps", "-eo", "args"], text=True, capture_output=True).stdout
    assert str(work) not in ps  # nothing that used the work directory runs on


def assert_interrupted_and_kept(keep: Path, work: Path, signame: str) -> None:
    verdict = json.loads((keep / "verdict.json").read_text())
    assert verdict["outcome"] == "interrupted" and verdict["interrupted"] == signame
    assert verdict["checks"][0]["detail"].startswith(f"interrupted by {signame}")
    assert (keep / "serial.log").stat().st_size > 0
    cmdline = (keep / "qemu.cmdline").read_text()
    assert str(keep / "serial.log") in cmdline and str(work) not in cmdline


@pytest.fixture(scope="module")
def setup(
    default_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """The default image and a second copy of it (another directory, hard-linked), and an
    environment whose work parent is a fresh directory."""
    other = tmp_path_factory.mktemp("copy")
    for f in default_image.iterdir():
        if f.suffix == ".qcow2":
            os.link(f, other / f.name)
        elif f.suffix in (".json", ".fd"):
            shutil.copyfile(f, other / f.name)
    work = tmp_path_factory.mktemp("work")
    env = {**os.environ, "DPS_COMPOSER_WORK_DIR": str(work)}
    yield default_image / f"{NAME}.qcow2", other / f"{NAME}.qcow2", env
    shutil.rmtree(other, ignore_errors=True)


CASES = [  # (milestone, signal, exit code): firmware, kernel, userspace
    ("firmware", signal.SIGTERM, 143),
    ("firmware", signal.SIGKILL, -9),
    ("kernel", signal.SIGHUP, 129),
    ("kernel", signal.SIGKILL, -9),
    ("root-mounted", signal.SIGTERM, 143),
    ("root-mounted", signal.SIGKILL, -9),
    ("firmware", signal.SIGINT, 130),
]


def test_boot_killed_anywhere_leaves_nothing(
    setup: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    image, _, env = setup
    work = Path(env["DPS_COMPOSER_WORK_DIR"])
    left: list[Path] = []
    for n, (milestone, sig, code) in enumerate(CASES):
        keep = tmp_path / f"keep-{n}"
        killed = boot_and_kill([str(image), "--keep", str(keep)], milestone, sig, env, 1)
        assert killed.returncode == code, killed.output
        assert_nothing_runs(killed, work)
        for old in left:  # the killed boot before this one left it; this one removed it
            assert not old.exists(), f"{old} survived the next boot"
        left = leftovers(work)
        if sig == signal.SIGKILL:
            (one,) = left
            assert unlocked(one)
        else:
            assert left == []
            assert_interrupted_and_kept(keep, work, signal.Signals(sig).name)


def test_parallel_boots_killed_leave_nothing(
    setup: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """`boot -j 2`: the boots run in a thread pool; both VMs stop on SIGTERM (each boot keeps
    its logs) and die with the composer on SIGKILL."""
    image, other, env = setup
    work = Path(env["DPS_COMPOSER_WORK_DIR"])
    keep = tmp_path / "keep"
    args = ["-j", "2", str(image), str(other), "--keep", str(keep)]
    killed = boot_and_kill(args, "kernel", signal.SIGKILL, env, 2)
    assert killed.returncode == -9
    assert len(killed.pids["qemu"]) == 2
    assert_nothing_runs(killed, work)
    stale = leftovers(work)
    assert len(stale) == 2 and all(unlocked(p) for p in stale)
    killed = boot_and_kill(args, "kernel", signal.SIGTERM, env, 2)
    assert killed.returncode == 143 and len(killed.pids["qemu"]) == 2
    assert_nothing_runs(killed, work)
    assert leftovers(work) == []
    kept = sorted(p.name for p in keep.iterdir())
    assert len(kept) == 2
    for name in kept:
        assert_interrupted_and_kept(keep / name, work, "SIGTERM")
