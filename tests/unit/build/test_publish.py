"""Publishing into an output directory: all of one build, its manifest last, nothing written
through a planted name, and two builds into one directory never mixed (real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from composer.build import cache_record
from composer.build.cache import StageCache
from composer.build.publish import ENTRY_MANIFEST, keep_log, publish, reuse_image, store_image
from composer.core.files import OutputPathError

from .. import manifests

PUBLISHER = """
import hashlib, json, sys
from pathlib import Path
from composer.build.publish import publish
from composer.core.workdir import owned_dir

out, who, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
template = json.loads(Path(sys.argv[4]).read_text())
for i in range(rounds):
    with owned_dir(out, ".img.partial-") as staging:
        data = f"{who}-{i}".encode() * 1000
        (staging / "img.raw").write_bytes(data)
        (staging / "img.vars.fd").write_bytes(data[:10])
        (staging / "img.build.log").write_text(who)
        manifest = staging / "img.manifest.json"
        sha = hashlib.sha256(data).hexdigest()
        entry = {**template["outputs"][0], "sha256": sha, "size": len(data)}
        manifest.write_text(json.dumps({**template, "outputs": [entry]}))
        publish("img", [staging / n for n in ("img.raw", "img.vars.fd", "img.build.log")],
                manifest, out)
"""

READER = """
import sys, time
from pathlib import Path
from composer.manifest.load import ManifestError, load

image, end, seen, mixed = Path(sys.argv[1]), time.monotonic() + 60, 0, 0
while time.monotonic() < end and not Path(sys.argv[2]).exists():
    try:
        if load(image) is not None:
            seen += 1
    except ManifestError:
        mixed += 1
    except FileNotFoundError:
        pass
print(seen, mixed)
"""


def _staging(out: Path, name: str, files: dict[str, bytes], outputs: list[str]) -> list[Path]:
    staging = out / f".{name}.partial-x"
    staging.mkdir(parents=True)
    for file, data in files.items():
        (staging / file).write_bytes(data)
    entries = [manifests.output(f, files[f]) for f in outputs if f in files]
    manifests.write(staging / f"{name}.manifest.json", name=name, outputs=entries)
    return [staging / f for f in files]


def test_publish_replaces_the_previous_build_and_drops_what_it_no_longer_makes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    old = _staging(out, "img", {"img.raw": b"1", "img.vhd": b"1"}, ["img.raw", "img.vhd"])
    publish("img", old, old[0].parent / "img.manifest.json", out)
    old[0].parent.rmdir()
    (out / "other.raw").write_bytes(b"another image's")
    new = _staging(out, "img", {"img.raw": b"2", "img.qcow2": b"2"}, ["img.raw", "img.qcow2"])
    files, manifest = publish("img", new, new[0].parent / "img.manifest.json", out)
    assert manifest == out / "img.manifest.json"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["img.manifest.json", "img.qcow2", "img.raw", "other.raw"]
    assert (out / "img.raw").read_bytes() == b"2"
    assert files == [out / "img.raw", out / "img.qcow2"]


def test_a_planted_name_is_refused_before_anything_moves(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (out / "img.qcow2").symlink_to(victim)
    files = _staging(out, "img", {"img.raw": b"x", "img.qcow2": b"x"}, ["img.raw", "img.qcow2"])
    with pytest.raises(OutputPathError, match="symbolic link"):
        publish("img", files, files[0].parent / "img.manifest.json", out)
    assert victim.read_text() == "keep"
    assert not (out / "img.raw").exists() and not (out / "img.manifest.json").exists()


def test_a_failed_builds_log_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = out / ".img.partial-x"
    staging.mkdir(parents=True)
    (staging / "img.build.log").write_text("$ mkfs.ext4 …\nfailed\n")
    kept = keep_log(staging / "img.build.log", out, "img")
    assert kept == out / "img.build.log" and "failed" in kept.read_text()
    (staging / "img.build.log").write_text("again")
    kept.unlink()
    kept.symlink_to(tmp_path / "elsewhere")
    assert keep_log(staging / "img.build.log", out, "img") is None
    assert not (tmp_path / "elsewhere").exists()


def test_two_builds_publishing_into_one_directory_never_mix(tmp_path: Path) -> None:
    """Two publishers replace the same image 40 times each while a reader checks, again and
    again, that the manifest it finds describes the image beside it."""
    out = tmp_path / "out"
    out.mkdir()
    done = tmp_path / "done"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(out / "img.raw"), str(done)],
        stdout=subprocess.PIPE,
        text=True,
    )
    template = manifests.write(
        tmp_path / "template.json", outputs=[manifests.output("img.raw", b"")]
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", PUBLISHER, str(out), who, "40", str(template)])
        for who in ("a", "b")
    ]
    for w in writers:
        assert w.wait(timeout=300) == 0
    done.touch()
    seen, mixed = map(int, reader.communicate(timeout=120)[0].split())
    assert mixed == 0, f"{mixed} of {seen + mixed} reads found another build's manifest"
    data = (out / "img.raw").read_bytes()
    listed = json.loads((out / "img.manifest.json").read_text())["outputs"][0]["sha256"]
    assert hashlib.sha256(data).hexdigest() == listed
    assert (out / "img.build.log").read_text() == data.decode()[0]
    assert sorted(p.name for p in out.iterdir()) == [
        ".dps-composer-output.lock",
        "img.build.log",
        "img.manifest.json",
        "img.raw",
        "img.vars.fd",
    ]


def _stored(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An image built into a staging directory, stored in a stage cache and published as a
    build does it: (output directory, cache entry, a second staging directory)."""
    out = tmp_path / "out"
    files = _staging(out, "img", {"img.raw": b"disk" * 1000}, ["img.raw"])
    manifest = files[0].parent / "img.manifest.json"
    entry = StageCache(tmp_path / "cache").put(
        "image", "k", lambda d: store_image(files, lambda: manifest, d)
    )
    publish("img", files, manifest, out)
    again = out / ".img.partial-y"
    again.mkdir()
    return out, entry, again


def test_outputs_are_stored_as_links_and_reused_as_copies(tmp_path: Path) -> None:
    """Storing costs no copy: the entry's output is the published file. Reusing copies it, so
    two builds never share an output (a --writable boot of one leaves the other alone)."""
    out, entry, again = _stored(tmp_path)
    assert (entry / "img.raw").samefile(out / "img.raw")
    assert not (entry / ENTRY_MANIFEST).samefile(out / "img.manifest.json")
    reused = reuse_image(entry, again)
    assert not isinstance(reused, str), reused
    (copy,) = reused[0]
    assert copy.read_bytes() == (out / "img.raw").read_bytes()
    assert not copy.samefile(out / "img.raw") and copy.stat().st_nlink == 1


def test_an_output_changed_in_place_is_found_when_the_entry_is_reused(tmp_path: Path) -> None:
    out, entry, again = _stored(tmp_path)
    with (out / "img.raw").open("r+b") as fh:  # what a --writable boot does
        fh.write(b"DATA")
    wrong = reuse_image(entry, again)
    assert isinstance(wrong, str)
    assert "img.raw: sha256" in wrong and "changed in place" in wrong, wrong
    assert list(again.iterdir()) == []  # no copy of the damaged entry takes the build's space


@pytest.mark.parametrize("name", ["../victim", "/abs/victim", "..", ""])
def test_a_record_naming_a_file_outside_its_entry_is_damaged(tmp_path: Path, name: str) -> None:
    """A cache record's names are joined to the entry and to the build's staging directory:
    one that leads out of them makes the record damaged, and nothing outside is read,
    written or removed."""
    out, entry, again = _stored(tmp_path)
    victim = again.parent / "victim"
    victim.write_bytes(b"host file")
    meta = entry / cache_record.ENTRY
    record = json.loads(meta.read_text())
    record["content"][name] = {"kind": "file", "size": 1, "sha256": "0" * 64}
    meta.write_text(json.dumps(record))
    wrong = reuse_image(entry, again)
    assert isinstance(wrong, str) and f"names {name!r}" in wrong, wrong
    assert cache_record.check(entry) == wrong
    assert victim.read_bytes() == b"host file" and list(again.iterdir()) == []


def test_an_entry_file_replaced_by_a_link_is_not_followed(tmp_path: Path) -> None:
    out, entry, again = _stored(tmp_path)
    host = tmp_path / "host-file"
    host.write_bytes((out / "img.raw").read_bytes())  # even with the recorded size and hash
    (entry / "img.raw").unlink()
    (entry / "img.raw").symlink_to(host)
    assert reuse_image(entry, again) == "img.raw is not a regular file"
    assert list(again.iterdir()) == []


def test_outputs_are_copied_where_they_cannot_be_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(src: Path, dest: Path) -> None:
        raise OSError(18, "Invalid cross-device link")  # EXDEV: another file system

    monkeypatch.setattr(os, "link", cross_device)
    out, entry, again = _stored(tmp_path)
    assert (entry / "img.raw").read_bytes() == (out / "img.raw").read_bytes()
    assert not (entry / "img.raw").samefile(out / "img.raw")
    assert not isinstance(reuse_image(entry, again), str)


def test_cache_check_names_an_output_changed_in_place(tmp_path: Path) -> None:
    out, entry, _ = _stored(tmp_path)
    assert cache_record.check(entry, hash_files=True) is None
    with (out / "img.raw").open("r+b") as fh:
        fh.write(b"DATA")
    assert "changed in place" in (cache_record.check(entry, hash_files=True) or "")
