"""The stage cache end to end: hits when nothing changed, misses exactly what a change
affects, survives a killed build, serves two builds at once; builds are bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from composer.build import default_cache_dir
from composer.cache import StageCache
from composer.disk.read import read_ext4_file
from composer.output import sha256_file

from .conftest import ROOT, composer, manifest

pytestmark = pytest.mark.integration

DEFAULT = ROOT / "blueprints/debian-uki-sdboot.toml"
NAME = "debian-uki-sdboot"
# a package the default blueprint lacks: a root tree no other test has built
EXTRA = '\n[[packages]]\nname = "less"\n'


def variant(dest: Path, hostname: str, extra: str = "") -> Path:
    text = DEFAULT.read_text().replace('hostname = "dps-debian"', f'hostname = "{hostname}"')
    assert f'"{hostname}"' in text
    dest.write_text(text.replace("[customizations]", extra + "\n[customizations]", 1))
    return dest


def raw_of(out: Path) -> Path:
    return out / f"{NAME}.raw"


def hostname(out: Path) -> bytes:
    root = manifest(out)["disk"]["partitions"][1]["offset"]
    return read_ext4_file(raw_of(out), root, "/etc/hostname")


def start_build(blueprint: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "composer.cli", "build", str(blueprint), "-o", str(out)],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: killed with all its children
    )


def test_no_change_rebuild_reuses_every_output(default_image: Path, tmp_path: Path) -> None:
    # the default image's entry may have been pruned since (DPS_COMPOSER_CACHE_MAX): this
    # build makes sure it is there, the next must take it
    composer("build", str(DEFAULT), "-o", str(tmp_path / "first"))
    out = tmp_path / "again"
    start = time.monotonic()
    composer("build", str(DEFAULT), "-o", str(out))
    print(f"no-change rebuild: {time.monotonic() - start:.1f} s")
    m, first = manifest(out), manifest(default_image)
    assert m["cache"]["image"] == "hit"
    assert [o["sha256"] for o in m["outputs"]] == [o["sha256"] for o in first["outputs"]]
    for o in m["outputs"]:
        assert sha256_file(out / o["file"]) == o["sha256"]


def test_hostname_change_misses_only_the_image_stage(default_image: Path, tmp_path: Path) -> None:
    composer("build", str(DEFAULT), "-o", str(tmp_path / "default"))  # its root tree is cached
    bp = variant(tmp_path / "host.toml", "renamed")
    start = time.monotonic()
    composer("build", str(bp), "-o", str(tmp_path / "a"))
    print(f"rebuild after a hostname change: {time.monotonic() - start:.1f} s")
    m = manifest(tmp_path / "a")
    assert m["cache"] == {"root": "hit", "image": "miss"}, m["cache"]
    assert hostname(tmp_path / "a") == b"renamed\n"
    assert hostname(default_image) == b"dps-debian\n"
    assert m["uki"]["sha256"] == manifest(default_image)["uki"]["sha256"]
    composer("build", str(bp), "-o", str(tmp_path / "b"))
    assert manifest(tmp_path / "b")["cache"]["image"] == "hit"
    assert sha256_file(raw_of(tmp_path / "b")) == sha256_file(raw_of(tmp_path / "a"))


def _complete_entries(cache: StageCache) -> None:
    if not cache.root.is_dir():  # nothing stored yet (the killed build was the first)
        return
    for stage_dir in cache.root.iterdir():
        for entry in stage_dir.iterdir():
            if not entry.name.startswith("."):
                assert (entry / "entry.json").is_file(), f"half-written cache entry {entry}"


def test_killed_build_leaves_the_cache_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"  # the builds' scratch directories (inherited by the CLI)
    monkeypatch.setenv("DPS_COMPOSER_WORK_DIR", str(work))
    bp = variant(tmp_path / "extra.toml", "extra", EXTRA)
    proc = start_build(bp, tmp_path / "killed")
    time.sleep(25)  # inside the root tree stage: mmdebstrap is installing packages
    assert proc.poll() is None, proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list((tmp_path / "killed").glob("*.raw")), "a killed build published an image"
    _complete_entries(StageCache(default_cache_dir()))
    listing = composer("cache", "list")
    assert "total" in listing.stdout
    mounts = Path("/proc/self/mounts").read_text()
    assert "dps-composer-debian-uki-sdboot" not in mounts, "the killed build left mounts"
    (left,) = work.iterdir()  # SIGKILL: the build could not remove its scratch directory
    composer("build", str(DEFAULT), "-o", str(tmp_path / "next"))
    assert not left.exists(), "the next build did not remove the killed build's directory"


def test_concurrent_builds_share_one_cache_and_agree(tmp_path: Path) -> None:
    """Two builds of one new blueprint at once (both miss the root tree stage, the one that
    stores second drops its copy); each image is complete, and the two are bit-identical:
    the root trees came from two separate package installations."""
    bp = variant(tmp_path / "extra.toml", "extra", EXTRA)
    procs = [start_build(bp, tmp_path / f"out{i}") for i in range(2)]
    logs = [p.communicate(timeout=1800)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log
    ms = [manifest(tmp_path / f"out{i}") for i in range(2)]
    assert all("less" in m["packages"] for m in ms)
    assert sorted(m["cache"]["root"] for m in ms) in (["miss", "miss"], ["hit", "miss"])
    shas = {sha256_file(raw_of(tmp_path / f"out{i}")) for i in range(2)}
    assert len(shas) == 1, "two builds of one blueprint differ"
    assert hostname(tmp_path / "out0") == b"extra\n"
    _complete_entries(StageCache(default_cache_dir()))


def test_build_without_cache_is_bit_identical(default_image: Path, tmp_path: Path) -> None:
    """Every stage afresh (new package installation, file systems, disk) into another
    directory: the same raw image, byte for byte."""
    out = tmp_path / "fresh"
    composer("build", "--no-cache", str(DEFAULT), "-o", str(out))
    m = manifest(out)
    assert set(m["cache"].values()) == {"off"}
    first = manifest(default_image)
    raw = {o["format"]: o["sha256"] for o in first["outputs"]}["raw"]
    assert sha256_file(raw_of(out)) == raw
    assert json.dumps(m["disk"], sort_keys=True) == json.dumps(first["disk"], sort_keys=True)
