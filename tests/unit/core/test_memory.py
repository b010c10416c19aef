"""Whether a build's scratch directory goes to memory (composer/core/memory.py), and where
build_parent puts it (composer/core/workdir.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core import memory, workdir
from composer.core.workdir import LOCK_SUFFIX, build_parent

GiB = 2**30
SHM = "tmpfs /dev/shm tmpfs rw,nosuid,nodev,size=12g 0 0"
MEMINFO = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   {kb} kB\n"


def refusal(need: int = GiB, free: int = 12 * GiB, mounts: str = SHM, kb: int = 20_000_000) -> str:
    return memory.refusal(need, free=free, mounts=mounts, meminfo=MEMINFO.format(kb=kb))


def test_a_tmpfs_with_room_and_memory_to_spare_takes_the_scratch() -> None:
    assert refusal() == ""
    # exactly twice the need there, and twice the need plus the reserve available
    assert refusal(free=2 * GiB, kb=(2 * GiB + memory.RESERVE) // 1024) == ""


@pytest.mark.parametrize(
    ("mounts", "said"),
    [
        ("", "/dev/shm is not a tmpfs"),
        ("/dev/vda /dev/shm ext4 rw 0 0", "/dev/shm is not a tmpfs"),
        ("tmpfs /dev/shm tmpfs ro,nosuid 0 0", "/dev/shm is mounted read-only"),
        ("tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec 0 0", "/dev/shm is mounted noexec"),
        # mounts stack: the last one at the place counts
        (f"{SHM}\ntmpfs /dev/shm tmpfs rw,noexec 0 0", "/dev/shm is mounted noexec"),
        (f"tmpfs /dev/shm tmpfs rw,noexec 0 0\n{SHM}", ""),
        ("tmpfs /dev/shmx tmpfs rw 0 0", "/dev/shm is not a tmpfs"),
    ],
)
def test_only_a_writable_tmpfs_that_runs_programs(mounts: str, said: str) -> None:
    assert refusal(mounts=mounts) == said


def test_too_little_room_or_memory_keeps_the_scratch_on_disk() -> None:
    assert refusal(free=GiB) == "/dev/shm has 1.0 GiB free, less than 2.0 GiB"
    assert refusal(free=2 * GiB - 1) != ""
    assert refusal(kb=5 * GiB // 1024) == "available memory 5.0 GiB, less than 6.0 GiB"
    assert refusal(kb=(2 * GiB + memory.RESERVE) // 1024 - 1) != ""
    assert (
        memory.refusal(GiB, free=12 * GiB, mounts=SHM, meminfo="MemTotal: 1 kB\n")
        == "available memory unknown, less than 6.0 GiB"
    )


def test_mem_available_is_read_in_bytes() -> None:
    assert memory.mem_available(MEMINFO.format(kb=3)) == 3072
    assert memory.mem_available("MemAvailable: lots\n") is None


def test_build_parent_takes_what_is_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(memory, "why_not_in_memory", lambda need, where: "")
    monkeypatch.setenv("DPS_COMPOSER_WORK_DIR", str(tmp_path))
    assert build_parent(GiB) == (tmp_path, "set by DPS_COMPOSER_WORK_DIR")
    assert build_parent(GiB, Path("/x"))[0] == Path("/x")


def test_build_parent_chooses_memory_when_it_fits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DPS_COMPOSER_WORK_DIR", raising=False)
    monkeypatch.setattr(memory, "MEMORY_DIR", tmp_path)
    asked: list[tuple[int, Path]] = []

    def fits(need: int, where: Path) -> str:
        asked.append((need, where))
        return ""

    monkeypatch.setattr(memory, "why_not_in_memory", fits)
    assert build_parent(3 * GiB) == (tmp_path, "in memory")
    assert asked == [(3 * GiB, tmp_path)]
    monkeypatch.setattr(memory, "why_not_in_memory", lambda need, where: "it is full")
    assert build_parent(GiB) == (Path("/var/tmp"), "not in memory: it is full")


def test_a_killed_builds_scratch_in_memory_is_removed_wherever_the_next_goes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DPS_COMPOSER_WORK_DIR", raising=False)
    monkeypatch.setattr(memory, "MEMORY_DIR", tmp_path)
    monkeypatch.setattr(memory, "why_not_in_memory", lambda need, where: "too little memory")
    left = tmp_path / f"{workdir.PREFIX}img-abc"
    (left / "root").mkdir(parents=True)
    left.with_name(left.name + LOCK_SUFFIX).touch()  # its owner is gone: nobody holds it
    other = tmp_path / "someone-elses"
    other.mkdir()
    assert build_parent(GiB)[0] == Path("/var/tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["someone-elses"]
