"""Result files are written under fresh names and never through somebody else's name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from composer.core import files
from composer.core.files import OutputPathError, atomic_path, atomic_write


def test_writes_with_the_mode_set_before_the_data(tmp_path: Path) -> None:
    target = tmp_path / "secret.ks"
    atomic_write(target, "rootpw --iscrypted $6$x\n", mode=0o600)
    assert target.read_text() == "rootpw --iscrypted $6$x\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.ks"]


def test_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    with pytest.raises(OutputPathError, match="symbolic link"):
        atomic_write(link, "{}")
    assert victim.read_text() == "host file\n"
    assert link.is_symlink()


def test_predictable_temporary_name_is_not_used(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    (tmp_path / ".out.json.tmp").symlink_to(victim)
    atomic_write(tmp_path / "out.json", "{}")
    assert victim.read_text() == "host file\n"
    assert (tmp_path / "out.json").read_text() == "{}"


def test_device_nodes_are_refused() -> None:
    with pytest.raises(OutputPathError, match="character device"):
        atomic_write(Path("/dev/null"), "x")


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="does not exist"):
        atomic_write(tmp_path / "no" / "such" / "file", "x")


def test_failure_leaves_no_temporary(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "image.qcow2") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("tool failed")
    assert list(tmp_path.iterdir()) == []


def test_keep_mode_of_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "fstab"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    atomic_write(target, "new\n", mode=None)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text() == "new\n"


def test_a_new_file_never_replaces_what_is_there(tmp_path: Path) -> None:
    target = tmp_path / "db.key"
    atomic_write(target, "first\n", mode=0o600, replace=False)
    assert target.read_text() == "first\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(OutputPathError, match="refusing to overwrite"):
        atomic_write(target, "second\n", mode=0o600, replace=False)
    dangling = tmp_path / "KEK.key"
    dangling.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputPathError, match="symbolic link"):
        atomic_write(dangling, "x", replace=False)
    # a file made by somebody else while ours was being written is kept, ours dropped
    racer = tmp_path / "PK.key"
    refused = pytest.raises(OutputPathError, match="refusing to overwrite")
    with refused, atomic_path(racer, 0o600, replace=False) as tmp:
        tmp.write_text("ours\n")
        racer.write_text("theirs\n")
    assert racer.read_text() == "theirs\n" and target.read_text() == "first\n"
    assert not (tmp_path / "elsewhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["KEK.key", "PK.key", "db.key"]


def test_sync_tree_fsyncs_a_few_files_and_skips_what_has_no_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO (opening it would block) and a dangling link are passed over; a few files are
    fsynced one by one, a large tree takes one syncfs."""
    called: list[Path] = []
    real = files.sync_filesystem

    def recorded(path: Path) -> None:
        called.append(path)
        real(path)

    monkeypatch.setattr(files, "sync_filesystem", recorded)
    small = tmp_path / "small"
    (small / "sub").mkdir(parents=True)
    (small / "sub/out.qcow2").write_bytes(b"image")
    os.mkfifo(small / "fifo")
    (small / "dangling").symlink_to("/nonexistent")
    files.sync_tree(small)
    assert called == []
    large = tmp_path / "large"
    large.mkdir()
    for n in range(files.FSYNC_AT_MOST + 1):
        (large / str(n)).write_bytes(b"")
    files.sync_tree(large)
    assert called == [large]
