"""The shared stage cache: complete entries only, checked in full when pulled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from composer.build import cache_record
from composer.build.cache import StageCache
from composer.build.cache_shared import SharedStore, StoreError


def _entry(cache: StageCache, key: str = "k1") -> Path:
    def make(d: Path) -> None:
        (d / "uki.efi").write_bytes(b"MZ" + os.urandom(4096))
        tree = d / "tree"
        (tree / "etc").mkdir(parents=True)
        (tree / "etc" / "hostname").write_text("h\n")
        os.chmod(tree / "etc" / "hostname", 0o640)
        (tree / "etc" / "link").symlink_to("hostname")
        os.utime(tree / "etc" / "hostname", ns=(1_700_000_000_123_456_789,) * 2)

    return cache.put("root", key, make)


def test_push_then_pull_gives_the_same_checked_entry(tmp_path: Path) -> None:
    here, there = StageCache(tmp_path / "a"), StageCache(tmp_path / "b")
    store = SharedStore((tmp_path / "store").as_uri())
    entry = _entry(here)
    assert store.pull(there, "root", "k1") == "absent"
    assert store.push(here, "root", "k1", entry) is True
    assert store.push(here, "root", "k1", entry) is False  # once
    assert store.pull(there, "root", "k1") is None
    pulled = there.get("root", "k1")
    assert pulled is not None and cache_record.check(pulled, full=True) is None
    assert (pulled / "tree/etc/link").readlink() == Path("hostname")
    assert (pulled / "tree/etc/hostname").stat().st_mode & 0o777 == 0o640
    assert (pulled / "tree/etc/hostname").stat().st_mtime_ns == 1_700_000_000_123_456_789
    assert (pulled / "uki.efi").read_bytes() == (entry / "uki.efi").read_bytes()
    # no temporaries left behind, here, there or in the store
    assert sorted(p.name for p in (tmp_path / "store/stages/root").iterdir()) == [
        "k1.json",
        "k1.tar",
    ]
    assert not [p for p in (tmp_path / "b").rglob(".tmp-*") if not p.name.endswith(".lock")]


def test_a_changed_archive_is_refused(tmp_path: Path) -> None:
    here, there = StageCache(tmp_path / "a"), StageCache(tmp_path / "b")
    store = SharedStore((tmp_path / "store").as_uri())
    store.push(here, "root", "k1", _entry(here))
    tar = tmp_path / "store/stages/root/k1.tar"
    data = bytearray(tar.read_bytes())
    data[len(data) // 3] ^= 0xFF
    tar.write_bytes(bytes(data))
    why = store.pull(there, "root", "k1")
    assert why is not None and "sha256" in why
    assert there.get("root", "k1") is None


def test_an_archive_whose_entry_does_not_match_its_record_is_refused(tmp_path: Path) -> None:
    """A store written by someone else: the archive matches its record, the entry inside
    does not match its own entry.json (a file was changed before packing)."""
    here, there = StageCache(tmp_path / "a"), StageCache(tmp_path / "b")
    entry = _entry(here)
    (entry / "uki.efi").write_bytes(b"MZ changed")
    store = SharedStore((tmp_path / "store").as_uri())
    store.push(here, "root", "k1", entry)
    why = store.pull(there, "root", "k1")
    assert why is not None and "uki.efi" in why
    assert there.get("root", "k1") is None


def test_without_its_record_an_archive_is_not_there(tmp_path: Path) -> None:
    here, there = StageCache(tmp_path / "a"), StageCache(tmp_path / "b")
    store = SharedStore((tmp_path / "store").as_uri())
    store.push(here, "root", "k1", _entry(here))
    (tmp_path / "store/stages/root/k1.json").unlink()  # as if the push was killed before it
    assert store.pull(there, "root", "k1") == "absent"
    assert not store.has("root", "k1")


def test_a_bad_url_is_an_input_error() -> None:
    with pytest.raises(StoreError, match="--cache-url 'nosuchproto://x'"):
        SharedStore("nosuchproto://x")


def test_the_record_says_what_the_archive_is(tmp_path: Path) -> None:
    here = StageCache(tmp_path / "a")
    store = SharedStore((tmp_path / "store").as_uri())
    store.push(here, "root", "k1", _entry(here))
    record = json.loads((tmp_path / "store/stages/root/k1.json").read_text())
    assert record["size"] == (tmp_path / "store/stages/root/k1.tar").stat().st_size
    assert set(record) == {"stage", "key", "size", "sha256"}
