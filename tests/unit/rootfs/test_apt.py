"""mmdebstrap's hooks: the one that saves downloaded .debs into the shared archive cache (every
.deb is copied aside and renamed in, so a build reading the cache never takes half of one), and
the one that puts package-check's index into the tree, so that mmdebstrap skips its update."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from composer.core import tools
from composer.rootfs import apt
from composer.rootfs.apt import _archive_sync_out, _index_in
from composer.spec.arch import get_arch


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


def test_the_index_goes_into_the_tree_with_apts_caches_made_by_mmdebstraps_config(
    tmp_path: Path,
) -> None:
    """What mmdebstrap's run_update looks for before it skips `apt-get update`: the lists,
    lists/auxfiles, lists/partial, lists/lock, and the caches apt makes from them (here a
    stand-in apt-cache on PATH says which configuration and command it was given)."""
    index, root, bin_dir = (
        tmp_path / "index with 'quotes' $x",
        tmp_path / "my root",
        tmp_path / "bin",
    )
    index.mkdir()
    (index / "deb.debian.org_debian_dists_trixie_InRelease").write_text("signed")
    (index / "deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages.lz4").write_text("p")
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    bin_dir.mkdir()
    fake = bin_dir / "apt-cache"
    fake.write_text('#!/bin/sh\necho "$APT_CONFIG $*" > "$MMDEBSTRAP_TEST_OUT"\n')
    fake.chmod(0o755)
    out = tmp_path / "called"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MMDEBSTRAP_APT_CONFIG": "/tmp/mm.conf",
           "MMDEBSTRAP_TEST_OUT": str(out)}  # fmt: skip
    subprocess.run(["sh", "-c", _index_in(index), "exec", str(root)], check=True, env=env)
    lists = root / "var/lib/apt/lists"
    assert sorted(p.name for p in lists.iterdir()) == sorted(
        ["auxfiles", "partial", "lock", *(p.name for p in index.iterdir())]
    )
    assert (lists / "deb.debian.org_debian_dists_trixie_InRelease").read_text() == "signed"
    assert out.read_text() == "/tmp/mm.conf gencaches\n"


def test_mmdebstrap_is_found_on_the_users_path_and_runs_with_the_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's mmdebstrap (a PATH entry of their own comes first), but what it runs by name
    (mmtarfilter, a `#!/usr/bin/env python3` script, per essential package) comes from the
    distribution's directories, not from a version manager's shims earlier on the PATH."""
    bin_dir = tmp_path / "shims"
    bin_dir.mkdir()
    (bin_dir / "mmdebstrap").write_text("#!/bin/sh\n")
    (bin_dir / "mmdebstrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    calls: list[tuple[Sequence[str], Mapping[str, str]]] = []

    def run(argv: Sequence[str], *, env: Mapping[str, str], **_: Any) -> None:
        calls.append((argv, env))

    monkeypatch.setattr(tools, "run", run)
    apt.mmdebstrap(
        tmp_path / "root",
        suite="trixie",
        mirror="http://deb.debian.org/debian",
        arch=get_arch("x86_64"),
        packages=["systemd"],
        archive_cache=tmp_path / "archives",
    )
    [(argv, env)] = calls
    assert argv[:4] == ["unshare", "--mount", "--propagation=private", str(bin_dir / "mmdebstrap")]
    assert env["PATH"] == tools.SYSTEM_PATH == "/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["INITRD"] == "No"
