"""The mmdebstrap hook that saves downloaded .debs into the shared archive cache: every .deb is
copied aside and renamed in, so a build reading the cache never takes half of one."""

from __future__ import annotations

import subprocess
from pathlib import Path

from composer.rootfs.apt import _archive_sync_out


def _run_hook(root: Path, cache: Path, sync: Path) -> None:
    # mmdebstrap runs a hook as `sh -c HOOK exec ROOT`
    subprocess.run(["sh", "-c", _archive_sync_out(cache, sync), "exec", str(root)], check=True)


def test_new_debs_are_renamed_into_the_cache_and_leave_the_tree(tmp_path: Path) -> None:
    root, cache = tmp_path / "my root", tmp_path / "cache with 'quotes' $x"
    archives = root / "var/cache/apt/archives"
    archives.mkdir(parents=True)
    sync = cache / ".tmp-sync-1"
    sync.mkdir(parents=True)
    (archives / "a_1_amd64.deb").write_bytes(b"new")
    (archives / "b_1_amd64.deb").write_bytes(b"from this run")
    (cache / "b_1_amd64.deb").write_bytes(b"already cached")
    before = (cache / "b_1_amd64.deb").stat().st_ino
    _run_hook(root, cache, sync)
    assert (cache / "a_1_amd64.deb").read_bytes() == b"new"
    assert (cache / "b_1_amd64.deb").stat().st_ino == before  # not rewritten under a reader
    assert list(sync.iterdir()) == [] and list(archives.iterdir()) == []


def test_no_debs_is_fine(tmp_path: Path) -> None:
    (tmp_path / "root/var/cache/apt/archives").mkdir(parents=True)
    (tmp_path / "sync").mkdir()
    _run_hook(tmp_path / "root", tmp_path, tmp_path / "sync")
