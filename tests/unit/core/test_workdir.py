"""Locked temporaries: removed by their owner, swept when their owner was killed, and never
swept while their owner starts or runs (real processes, real races)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from composer.core.workdir import (
    LOCK_SUFFIX,
    made_once,
    owned_dir,
    remove_stale,
    scratch_dir,
    sweep,
    work_parent,
)

HOLD = """
import sys, time
from pathlib import Path
from composer.core.workdir import scratch_dir
with scratch_dir("killed", Path(sys.argv[1])) as d:
    (d / "big").write_bytes(b"x" * 1000)
    print(d, flush=True)
    time.sleep(600)
"""

# Owners that make, fill and check a directory over and over while others sweep.
OWNER = """
import sys
from pathlib import Path
from composer.core.workdir import scratch_dir
lost = 0
for i in range(int(sys.argv[2])):
    with scratch_dir("race", Path(sys.argv[1])) as d:
        try:
            (d / "mine").write_text(str(i))
            if (d / "mine").read_text() != str(i):
                lost += 1
        except FileNotFoundError:
            lost += 1
print(lost)
"""

SWEEPER = """
import sys, time
from pathlib import Path
from composer.core.workdir import remove_stale
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    remove_stale(Path(sys.argv[1]))
"""


def _python(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True
    )


def test_scratch_dir_is_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), scratch_dir("img", tmp_path) as d:
        (d / "f").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_owners_directory_goes_with_the_next_one(tmp_path: Path) -> None:
    proc = _python(HOLD, tmp_path)
    assert proc.stdout is not None
    left = Path(proc.stdout.readline().strip())
    with scratch_dir("other", tmp_path) as running:
        assert remove_stale(tmp_path) == []  # the holder still runs: its lock is taken
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert left.is_dir()  # SIGKILL: no clean-up of its own
        assert remove_stale(tmp_path) == [left]
        assert running.is_dir()
        assert (tmp_path / (running.name + LOCK_SUFFIX)).is_file()
    assert list(tmp_path.iterdir()) == []


def test_sweepers_never_remove_a_directory_whose_owner_starts_or_runs(tmp_path: Path) -> None:
    """Four owners make 300 directories each (every make also sweeps) while two sweepers
    sweep without pause: no owner ever finds its directory gone."""
    sweepers = [_python(SWEEPER, tmp_path, 30) for _ in range(2)]
    owners = [_python(OWNER, tmp_path, 300) for _ in range(4)]
    lost = [int(p.communicate(timeout=300)[0]) for p in owners]
    for p in sweepers:
        p.kill()
        p.wait()
    assert lost == [0, 0, 0, 0]
    assert list(tmp_path.iterdir()) == []


def test_an_owner_killed_before_its_directory_existed_leaves_only_a_sweepable_lock(
    tmp_path: Path,
) -> None:
    orphan = tmp_path / f"dps-composer-x-abc{LOCK_SUFFIX}"  # a lock file, never locked
    orphan.touch()
    assert remove_stale(tmp_path) == [tmp_path / "dps-composer-x-abc"]
    assert list(tmp_path.iterdir()) == []


def test_directories_without_a_lock_are_not_touched(tmp_path: Path) -> None:
    foreign = tmp_path / "dps-composer-someone-elses"
    foreign.mkdir()
    with scratch_dir("x", tmp_path):
        pass
    assert foreign.is_dir()


def test_what_was_moved_out_stays(tmp_path: Path) -> None:
    """The cache publishes an entry by renaming its temporary: the owner's clean-up then has
    nothing left to remove but its lock."""
    with owned_dir(tmp_path, ".tmp-k-") as d:
        (d / "data").write_text("kept")
        d.rename(tmp_path / "entry")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]
    assert sweep(tmp_path, ".tmp-*") == []


def test_a_symlink_in_place_of_a_directory_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    (tmp_path / "dps-composer-evil").symlink_to(victim)
    (tmp_path / f"dps-composer-evil{LOCK_SUFFIX}").touch()
    remove_stale(tmp_path)
    assert (victim / "keep").is_file()


def test_work_parent_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DPS_COMPOSER_WORK_DIR", raising=False)
    assert work_parent() == Path("/var/tmp")
    monkeypatch.setenv("DPS_COMPOSER_WORK_DIR", str(tmp_path))
    assert work_parent() == tmp_path
    assert work_parent(Path("/x")) == Path("/x")


def test_made_once_publishes_whole_and_a_loser_keeps_the_winners(tmp_path: Path) -> None:
    target = tmp_path / "keys"

    def make(path: Path, text: str) -> None:
        path.mkdir()
        (path / "key").write_text(text)

    def racing(path: Path) -> None:
        make(path, "loser")
        make(target, "winner")  # another command renamed its directory in meanwhile

    assert made_once(target, racing) is False
    assert (target / "key").read_text() == "winner"
    assert made_once(tmp_path / "other", lambda p: make(p, "mine")) is True
    assert (tmp_path / "other/key").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys", "other"]  # no temporaries
