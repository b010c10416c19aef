import os
import threading
import time
from pathlib import Path

import pytest

from composer.cache import DEFAULT_MAX_SIZE, StageCache, key_of, max_size_from_env
from composer.errors import ComposerError


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
