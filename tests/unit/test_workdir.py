import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from composer.workdir import LOCK, remove_stale, scratch_dir, work_parent

HOLD = """
import sys, time
from pathlib import Path
from composer.workdir import scratch_dir
with scratch_dir("killed", Path(sys.argv[1])) as d:
    (d / "big").write_bytes(b"x" * 1000)
    print(d, flush=True)
    time.sleep(600)
"""


def test_scratch_dir_is_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), scratch_dir("img", tmp_path) as d:
        (d / "f").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_builds_directory_goes_with_the_next_build(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    left = Path(proc.stdout.readline().strip())
    with scratch_dir("other", tmp_path) as running:
        assert remove_stale(tmp_path) == []  # the holder still runs: its lock is taken
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert left.is_dir()  # SIGKILL: no clean-up of its own
        assert remove_stale(tmp_path) == [left]
        assert running.is_dir() and (running / LOCK).is_file()
    assert list(tmp_path.iterdir()) == []


def test_directories_without_a_lock_are_not_touched(tmp_path: Path) -> None:
    foreign = tmp_path / "dps-composer-someone-elses"
    foreign.mkdir()
    with scratch_dir("x", tmp_path):
        pass
    assert foreign.is_dir()


def test_work_parent_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DPS_COMPOSER_WORK_DIR", raising=False)
    assert work_parent() == Path("/var/tmp")
    monkeypatch.setenv("DPS_COMPOSER_WORK_DIR", str(tmp_path))
    assert work_parent() == tmp_path
    assert work_parent(Path("/x")) == Path("/x")
