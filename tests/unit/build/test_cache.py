import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from composer.build import cache_record
from composer.build.cache import DEFAULT_MAX_SIZE, StageCache, max_size_from_env
from composer.cli import app
from composer.core.errors import ComposerError
from composer.core.hashing import key_of

from ..cli_run import ROOT


def test_key_is_stable_and_order_independent() -> None:
    assert key_of({"a": 1, "b": [1, 2]}) == key_of({"b": [1, 2], "a": 1})
    assert key_of({"a": 1}) != key_of({"a": 2})


def test_miss_then_hit(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    calls = []

    def make(d: Path) -> None:
        calls.append(d)
        (d / "out").write_text("x")

    path, hit = cache.get_or_make("uki", "k1", make)
    assert not hit and (path / "out").read_text() == "x"
    path2, hit2 = cache.get_or_make("uki", "k1", make)
    assert hit2 and path2 == path and len(calls) == 1


def test_interrupted_make_leaves_no_entry(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)

    def boom(d: Path) -> None:
        (d / "half").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.put("tree", "k", boom)
    assert cache.get("tree", "k") is None
    assert list(cache.entries()) == []
    assert not list((tmp_path / "stages" / "tree").iterdir())
    path, hit = cache.get_or_make("tree", "k", lambda d: (d / "ok").write_text("1"))
    assert not hit and (path / "ok").exists()


def test_concurrent_makers_both_get_a_complete_entry(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    barrier = threading.Barrier(2)
    results: list[Path] = []

    def make(d: Path) -> None:
        barrier.wait()
        (d / "data").write_text("same")

    def worker() -> None:
        results.append(cache.put("disk", "k", make))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1]
    assert (results[0] / "data").read_text() == "same"
    assert [e.key for e in cache.entries()] == ["k"]


def test_prune_by_age_and_size(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    for i in range(3):
        cache.put("s", f"k{i}", lambda d: (d / "f").write_bytes(b"x" * 10000))
    old = cache.get("s", "k0")
    assert old is not None
    past = time.time() - 10 * 86400
    os.utime(old / "entry.json", (past, past))
    removed = cache.prune(older_than=86400)
    assert [e.key for e in removed] == ["k0"]
    removed = cache.prune(max_size=1)
    assert {e.key for e in removed} == {"k1", "k2"}
    assert list(cache.entries()) == []


def test_size_cap_spares_entries_in_use(tmp_path: Path) -> None:
    """LRU first, but never an entry a concurrent build may be copying out of."""
    cache = StageCache(tmp_path)
    for i in range(3):
        cache.put("s", f"k{i}", lambda d: (d / "f").write_bytes(b"x" * 10000))
    now = time.time()
    for i, age in enumerate((3000, 2000, 10)):
        meta = tmp_path / "stages" / "s" / f"k{i}" / "entry.json"
        os.utime(meta, (now - age, now - age))
    removed = cache.prune(max_size=1, grace=600, now=now)
    assert [e.key for e in removed] == ["k0", "k1"]
    assert [e.key for e in cache.entries()] == ["k2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", DEFAULT_MAX_SIZE), ("2 GiB", 2 * 2**30), ("unlimited", None), ("0", None)],
)
def test_cap_from_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int | None
) -> None:
    monkeypatch.setenv("DPS_COMPOSER_CACHE_MAX", value)
    assert max_size_from_env() == expected


def test_bad_cap_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPS_COMPOSER_CACHE_MAX", "lots")
    with pytest.raises(ComposerError, match=r"DPS_COMPOSER_CACHE_MAX='lots'.*GiB"):
        max_size_from_env()


def test_entry_size_is_recorded_when_made(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    path = cache.put("s", "k", lambda d: (d / "f").write_bytes(b"x" * 100000))
    (entry,) = cache.entries()
    assert entry.size >= 100000
    (path / "f").unlink()  # the recorded size is used, the tree is not walked again
    assert next(cache.entries()).size == entry.size


# --- integrity: an entry is complete only when its content matches its record ---------------


def _entry_with_file_and_tree(cache: StageCache, key: str = "k") -> Path:
    def make(d: Path) -> None:
        (d / "out.img").write_bytes(b"image-bytes" * 1000)
        tree = d / "tree"
        (tree / "etc").mkdir(parents=True)
        (tree / "etc" / "hostname").write_text("host\n")
        (tree / "bin").symlink_to("usr/bin")

    return cache.put("s", key, make)


def _damage(entry: Path, how: str) -> None:
    if how == "truncated file":
        with open(entry / "out.img", "r+b") as fh:
            fh.truncate(100)
    elif how == "0-byte record":
        (entry / "entry.json").write_bytes(b"")
    elif how == "invalid record":
        (entry / "entry.json").write_text('{"version": 2, "content": {')
    elif how == "missing output":
        (entry / "out.img").unlink()
    elif how == "extra file":
        (entry / "stray").write_text("x")
    elif how == "tree file rewritten":
        (entry / "tree/etc/hostname").write_text("other\n")
    elif how == "tree file added":
        (entry / "tree/etc/shadow").write_text("x")
    elif how == "tree mode changed":
        (entry / "tree/etc/hostname").chmod(0o600)
    elif how == "tree link retargeted":
        (entry / "tree/bin").unlink()
        (entry / "tree/bin").symlink_to("usr/sbin")
    elif how == "record of an older composer":
        (entry / "entry.json").write_text('{"stage": "s", "key": "k", "size": 1}')


DAMAGE = [
    "truncated file",
    "0-byte record",
    "invalid record",
    "missing output",
    "extra file",
    "tree file rewritten",
    "tree file added",
    "tree mode changed",
    "tree link retargeted",
    "record of an older composer",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path: Path, how: str) -> None:
    cache = StageCache(tmp_path)
    entry = _entry_with_file_and_tree(cache)
    assert cache.get("s", "k") == entry
    _damage(entry, how)
    said: list[str] = []
    assert cache.get("s", "k", log=said.append) is None
    assert not entry.exists(), "the damaged entry stays"
    assert len(said) == 1 and "damaged entry removed" in said[0], said
    assert [p for p in (tmp_path / "stages/s").iterdir() if not p.name.endswith(".lock")] == []
    rebuilt = _entry_with_file_and_tree(cache)
    assert cache.get("s", "k") == rebuilt


def test_a_wrong_hash_of_the_same_size_is_caught_when_files_are_hashed(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    entry = _entry_with_file_and_tree(cache)
    stamp = (entry / "out.img").stat()
    with open(entry / "out.img", "r+b") as fh:
        fh.write(b"X")  # same size
    os.utime(entry / "out.img", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert cache.get("s", "k") == entry  # a hit checks sizes: cheap
    assert cache.get("s", "k", hash_files=True) is None


def test_full_check_catches_tree_contents_the_fingerprint_misses(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    entry = _entry_with_file_and_tree(cache)
    hostname = entry / "tree/etc/hostname"
    stamp = hostname.stat()
    hostname.write_text("HOST\n")  # same size, mtime put back: bit rot looks like this
    os.utime(hostname, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert cache_record.check(entry) is None
    problem = cache_record.check(entry, full=True)
    assert problem is not None and "tree: file contents differ" in problem


def test_listing_and_pruning_survive_damaged_records(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    good = _entry_with_file_and_tree(cache, "good")
    bad = _entry_with_file_and_tree(cache, "bad")
    (bad / "entry.json").write_bytes(b"")
    listed = {e.key: e.problem for e in cache.entries()}
    assert listed == {"bad": "entry.json is empty", "good": ""}
    removed = cache.prune()
    assert [e.key for e in removed] == ["bad"]
    assert good.is_dir() and not bad.exists()


@pytest.mark.parametrize("command", [["list"], ["prune"], ["check"]])
def test_cache_commands_never_show_a_traceback(tmp_path: Path, command: list[str]) -> None:
    cache = StageCache(tmp_path)
    _entry_with_file_and_tree(cache, "good")
    bad = _entry_with_file_and_tree(cache, "bad")
    (bad / "entry.json").write_text("{not json")
    (tmp_path / "stages" / "s" / "junk").write_text("a stray file")
    result = CliRunner().invoke(app, ["cache", *command, "--cache-dir", str(tmp_path)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if command == ["check"]:
        assert result.exit_code == 1
        assert "damaged s/bad: entry.json is not valid JSON" in result.output
        again = CliRunner().invoke(app, ["cache", "check", "--cache-dir", str(tmp_path)])
        assert again.exit_code == 0, again.output
        assert "1 entries checked, 0 damaged" in again.output


def test_cache_check_lists_what_killed_builds_left_and_prune_removes_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_PUT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "making"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stage = tmp_path / "stages" / "s"
    assert [p.name for p in stage.iterdir() if p.name.startswith(".tmp-")], "nothing left?"
    result = CliRunner().invoke(app, ["cache", "check", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output  # no entry is damaged: nothing was published
    assert "leftover of a killed command" in result.output
    result = CliRunner().invoke(app, ["cache", "prune", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in stage.iterdir() if not p.name.endswith(".lock")] == []


KILLED_PUT = """
import sys, time
from pathlib import Path
from composer.build.cache import StageCache

def make(d):
    (d / "half").write_bytes(b"x" * 1000)
    print("making", flush=True)
    time.sleep(600)

StageCache(Path(sys.argv[1])).put("s", "k", make)
"""

ONE_MAKER = """
import sys, time
from pathlib import Path
from composer.build.cache import StageCache

def make(d):
    with open(Path(sys.argv[2]), "a") as fh:
        fh.write("made\\n")
    time.sleep(0.5)
    (d / "out").write_text("result")

path, hit = StageCache(Path(sys.argv[1])).get_or_make("s", "k", make)
print("hit" if hit else "miss", (path / "out").read_text())
"""


def test_one_build_makes_an_entry_the_others_wait_and_take_it(tmp_path: Path) -> None:
    made = tmp_path / "made"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ONE_MAKER, str(tmp_path / "cache"), str(made)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    said = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert said == ["hit result", "hit result", "miss result"]
    assert made.read_text() == "made\n"


# What lets root read any directory; without them a mode 000 directory is unreadable to root
# too (capabilities(7)). Dropped from the bounding and inheritable sets, they are gone after
# execve also for uid 0.
DAC_CAPS = "-dac_override,-dac_read_search"
AS_ROOT_WITHOUT_DAC_CAPS = ["setpriv", f"--bounding-set={DAC_CAPS}", f"--inh-caps={DAC_CAPS}"]


def test_an_unreadable_cache_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    _entry_with_file_and_tree(cache)
    stage = tmp_path / "stages" / "s"
    stage.chmod(0o000)
    drop = AS_ROOT_WITHOUT_DAC_CAPS if os.geteuid() == 0 else []
    try:
        result = subprocess.run(
            [*drop, sys.executable, "-m", "composer", "cache", "list", "--cache-dir", tmp_path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stage.chmod(0o755)
    assert result.returncode == 3 and "Permission denied" in result.stderr, result
    assert "Traceback" not in result.stdout + result.stderr


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(app, ["cache", "prune", "--cache-dir", str(tmp_path / "file")])
    assert result.exit_code == 2 and "not a directory" in result.output
    assert "Traceback" not in result.output


def test_only_an_entry_hashed_on_every_use_skips_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sync=False (the whole image's entry, hashed whenever reused) publishes without forcing
    its files to disk; every other entry is synced before its record says it is whole."""
    from composer.build import cache as cache_module

    synced: list[Path] = []
    monkeypatch.setattr(cache_module, "sync_tree", synced.append)
    cache = StageCache(tmp_path)

    def make(d: Path) -> None:
        (d / "disk.raw").write_bytes(b"x" * 10)

    cache.put("root", "k1", make)
    assert len(synced) == 1 and synced[0].name.startswith(".tmp-k1-")
    image = cache.put("image", "k2", make, sync=False)
    assert len(synced) == 1
    assert cache.get("image", "k2", hash_files=True) == image  # whole, and recorded
