"""The stage cache end to end: hits when nothing changed, misses exactly what a change
affects; builds are bit-identical. (Killed builds, damaged entries and builds side by side:
test_faults.py.)"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import pytest

from composer.build.pipeline import stage_needs
from composer.build.stages.sequence import STAGES, stage
from composer.core.hashing import sha256_file
from composer.image.read import read_ext4_file

from .conftest import ROOT, composer, composer_streamed, manifest

pytestmark = pytest.mark.integration

DEFAULT = ROOT / "blueprints/debian-uki-sdboot.toml"
NAME = "debian-uki-sdboot"


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


STAGE_LINE = re.compile(r"^\d\d:\d\d:\d\d stage ([\w-]+): (started|built in|cached in)")


def check_stage_lines(lines: list[tuple[bool, str]]) -> None:
    """Stderr a pipe (CI): each stage that ran has a start line and an end line (cached or
    built), starts only after the stages it needs (composer/build/pipeline.py's stage_needs)
    have ended (stages that need nothing of each other, as the root tree and uki-virt, start
    in either order), and every start line was read from the pipe while the build was still
    running: progress as it happens, not at the end."""
    events = [(running, m.groups()) for running, line in lines if (m := STAGE_LINE.match(line))]
    assert events and all(running for running, (_, what) in events if what == "started"), lines
    names = [name for _, (name, what) in events if what == "started"]
    assert len(names) >= 2 and len(set(names)) == len(names), names
    at = {(name, what): i for i, (_, (name, what)) in enumerate(events)}
    for name in names:
        assert [w for _, (n, w) in events if n == name] in (
            ["started", "built in"],
            ["started", "cached in"],
        ), name
        for need in stage_needs(stage(name), STAGES) & set(names):
            ended = at.get((need, "built in"), at.get((need, "cached in")))
            assert ended is not None and ended < at[(name, "started")], (need, name, lines)


def test_no_change_rebuild_reuses_every_output(default_image: Path, tmp_path: Path) -> None:
    # the default image's entry may have been pruned since (DPS_COMPOSER_CACHE_MAX): this
    # build makes sure it is there, the next must take it
    composer("build", str(DEFAULT), "-o", str(tmp_path / "first"))
    out = tmp_path / "again"
    start = time.monotonic()
    composer("build", str(DEFAULT), "-o", str(out))
    print(f"no-change rebuild: {time.monotonic() - start:.1f} s")
    m, first = manifest(out), manifest(default_image)
    # the root tree, started beside uki-virt before the lookup, was stopped and is not named
    assert m["cache"] == {"image": "hit"}, m["cache"]
    assert [o["sha256"] for o in m["outputs"]] == [o["sha256"] for o in first["outputs"]]
    for o in m["outputs"]:
        assert sha256_file(out / o["file"]) == o["sha256"]


def test_hostname_change_misses_only_the_image_stage(default_image: Path, tmp_path: Path) -> None:
    composer("build", str(DEFAULT), "-o", str(tmp_path / "default"))  # its root tree is cached
    renamed = f"renamed-{secrets.token_hex(4)}"  # a miss even where an earlier run cached one
    bp = variant(tmp_path / "host.toml", renamed)
    start = time.monotonic()
    code, lines = composer_streamed("build", str(bp), "-o", str(tmp_path / "a"))
    print(f"rebuild after a hostname change: {time.monotonic() - start:.1f} s")
    assert code == 0
    check_stage_lines(lines)
    found = [STAGE_LINE.match(line) for _, line in lines]
    ended = {f.group(1): f.group(2) for f in found if f is not None}
    assert ended["tools-tree"] == ended["root"] == "cached in", ended  # not "built in 0.0 s"
    assert ended["customize"] == ended["image"] == "built in", ended
    m = manifest(tmp_path / "a")
    assert m["cache"] == {"root": "hit", "image": "miss"}, m["cache"]
    assert hostname(tmp_path / "a") == f"{renamed}\n".encode()
    assert hostname(default_image) == b"dps-debian\n"
    assert m["uki"]["sha256"] == manifest(default_image)["uki"]["sha256"]
    # the miss stored its outputs as links (no copy); the hit copies them out: its own files
    assert raw_of(tmp_path / "a").stat().st_nlink == 2
    composer("build", str(bp), "-o", str(tmp_path / "b"))
    assert manifest(tmp_path / "b")["cache"]["image"] == "hit"
    assert raw_of(tmp_path / "b").stat().st_nlink == 1
    assert sha256_file(raw_of(tmp_path / "b")) == sha256_file(raw_of(tmp_path / "a"))
    # "a"'s disk changed in place (as a --writable boot changes it) changes the entry it shares
    # a file with: the next build finds it, says why, and makes the image again
    with raw_of(tmp_path / "a").open("r+b") as fh:
        fh.seek(440)  # the protective MBR's disk signature
        fh.write(b"USED")
    again = composer("build", str(bp), "-o", str(tmp_path / "c"))
    assert "damaged entry removed" in again.stderr and "changed in place" in again.stderr
    assert manifest(tmp_path / "c")["cache"]["image"] == "miss"
    assert sha256_file(raw_of(tmp_path / "c")) == sha256_file(raw_of(tmp_path / "b"))


def test_shadow_dates_are_the_builds_epoch_not_the_day_of_the_build(default_image: Path) -> None:
    """The shadow tools write the day of the last password change: SOURCE_DATE_EPOCH's day,
    so that the same blueprint built another day makes the same image."""
    m = manifest(default_image)
    root = m["disk"]["partitions"][1]["offset"]
    shadow = read_ext4_file(raw_of(default_image), root, "/etc/shadow").decode()
    days = {line.split(":")[0]: line.split(":")[2] for line in shadow.splitlines()}
    assert days["admin"] == str(m["source_date_epoch"] // 86400), days


def test_build_without_cache_is_bit_identical(default_image: Path, tmp_path: Path) -> None:
    """Every stage afresh (new package installation, file systems, disk) into another
    directory: the same raw image, byte for byte. The tree was installed from the index
    package-check fetched (mmdebstrap found it in place and did not update again)."""
    out = tmp_path / "fresh"
    composer("build", "--no-cache", str(DEFAULT), "-o", str(out))
    m = manifest(out)
    assert set(m["cache"].values()) == {"off"}
    log = (out / f"{NAME}.build.log").read_text()
    assert "I: skipping apt-get update because it was already run" in log
    first = manifest(default_image)
    raw = {o["format"]: o["sha256"] for o in first["outputs"]}["raw"]
    assert sha256_file(raw_of(out)) == raw
    assert json.dumps(m["disk"], sort_keys=True) == json.dumps(first["disk"], sort_keys=True)
