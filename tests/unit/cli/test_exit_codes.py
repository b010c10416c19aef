"""The exit codes, through the real command line in a child process (README "Exit codes"):
0 success, 1 root not discoverable, 2 usage or input, 3 an external tool failed,
129/130/143 interrupted. (1 for a FAILed boot and 4 for an infrastructure error come from a
boot: tests/integration/test_boot_chains.py and tests/unit/judge/test_report.py.)"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.core.errors import ComposerError, HostError, MissingToolError, ToolError

from ..cli_run import ROOT, cli


def test_0_success(tmp_path: Path) -> None:
    bp = tmp_path / "bp.toml"
    bp.write_text('name = "x"\n')
    assert cli("plan", bp).returncode == 0


def test_1_root_not_discoverable(tmp_path: Path) -> None:
    blank = tmp_path / "blank.raw"
    blank.write_bytes(b"\0" * 2**20)  # no partition table
    done = cli("inspect", blank)
    assert done.returncode == 1 and "root auto-discovery: NO" in done.stdout


def test_2_blueprint_error(tmp_path: Path) -> None:
    bp = tmp_path / "bp.toml"
    bp.write_text('name = "x"\n[customizations]\nhostname = 5\n')
    done = cli("plan", bp)
    assert done.returncode == 2 and f"{bp}:3" in done.stderr


@pytest.mark.parametrize(
    "args",
    [["boot", "--accel", "bogus", "x.raw"], ["plan", "--no-such-option", "x"], ["plan"]],
)
def test_2_usage_error(args: list[str]) -> None:
    done = cli(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_3_an_external_tool_failed(tmp_path: Path) -> None:
    """qemu-img refuses a VMDK whose header is damaged: the tool failed, not the composer."""
    vmdk = tmp_path / "bad.vmdk"
    vmdk.write_bytes(b"KDMV\x01\x00\x00\x00".ljust(2**20, b"\0"))
    done = cli("inspect", vmdk)
    assert done.returncode == 3 and "qemu-img failed" in done.stderr


def test_error_classes_carry_their_codes() -> None:
    assert ComposerError("x").exit_code == 2
    assert HostError("x").exit_code == 3
    assert ToolError("t", ["t"], 1, "").exit_code == 3
    assert MissingToolError("t", "p").exit_code == 3


@pytest.fixture
def blocked_output_dir(tmp_path: Path) -> Iterator[Path]:
    """An image with a manifest beside it in a directory a build is publishing into (its
    output lock held): `boot` waits for the lock before it starts anything."""
    (tmp_path / "x.raw").write_bytes(b"\0" * 2**20)
    (tmp_path / "x.manifest.json").write_text("{}")
    lock = tmp_path / ".dps-composer-output.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield tmp_path
    finally:
        os.close(fd)


def _waiting_on(path: Path, deadline: float) -> None:
    """Until a process waits for the lock on ``path`` (a blocked entry in /proc/locks)."""
    inode = f":{os.stat(path).st_ino} "
    while time.monotonic() < deadline:
        locks = Path("/proc/locks").read_text()
        if any("->" in line and inode in line for line in locks.splitlines()):
            return
        time.sleep(0.05)
    raise AssertionError("boot never waited for the output lock")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGHUP, 129), (signal.SIGINT, 130), (signal.SIGTERM, 143)]
)
def test_interrupted(blocked_output_dir: Path, sig: signal.Signals, code: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", "boot", str(blocked_output_dir / "x.raw")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _waiting_on(blocked_output_dir / ".dps-composer-output.lock", time.monotonic() + 60)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == code and f"({sig.name})" in stderr
