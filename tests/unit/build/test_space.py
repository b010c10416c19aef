"""The free-space estimate, the up-front check, and disk-full errors that name the directory."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from composer.build import space
from composer.build.space import DiskFullError, MiB, Needs, Places
from composer.core.errors import ToolError


def test_the_tree_estimate_grows_with_the_packages() -> None:
    assert space.tree_estimate(7) == 280 * MiB  # the base set
    assert space.tree_estimate(10) == (280 + 3 * 16) * MiB
    assert space.tree_estimate(3) == 280 * MiB


def test_the_default_image_estimate_is_near_what_was_measured() -> None:
    """The default blueprint (10 packages, raw + qcow2): measured tree 357 MB, raw disk
    allocated 356 MB, qcow2 238 MB, image cache entry 599 MB."""
    needs = space.estimate(10, ("raw", "qcow2"), "zstd", cached_tree=None, store=True)
    assert 520 * MiB < needs.output < 700 * MiB
    assert 850 * MiB < needs.scratch < 1100 * MiB
    assert needs.cache == needs.output + space.tree_estimate(10)
    cached = space.estimate(10, ("raw", "qcow2"), "zstd", cached_tree=357_000_000, store=True)
    assert cached.cache == cached.output  # the root tree is cached already
    assert cached.scratch < needs.scratch
    assert any("cached" in b for b in cached.basis)


def test_formats_add_their_share() -> None:
    raw = space.outputs_estimate(300 * MiB, ("raw",), "zstd")
    qcow2 = space.outputs_estimate(300 * MiB, ("raw", "qcow2"), "zstd")
    plain = space.outputs_estimate(300 * MiB, ("raw", "qcow2"), "none")
    assert raw == 364 * MiB  # tree + 64 MiB
    assert qcow2 == raw + int(raw * 0.7)
    assert plain == 2 * raw
    # the raw disk is always made first, even when only qcow2 is kept
    assert space.outputs_estimate(300 * MiB, ("qcow2",), "zstd") == qcow2


def test_the_check_refuses_naming_directory_need_and_basis(tmp_path: Path) -> None:
    places = Places(tmp_path, tmp_path, tmp_path)
    free = space.free_bytes(tmp_path)
    with pytest.raises(DiskFullError) as err:
        space.require(places, Needs(scratch=free, output=1 * MiB, basis=["root tree 9 MiB"]))
    text = str(err.value)
    assert str(tmp_path) in text and "(one file system)" in text
    assert "root tree 9 MiB" in text and err.value.exit_code == 3
    space.require(places, Needs(scratch=1, output=1))  # room enough: no error


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        ToolError("cp", ["cp", "a", "b"], 1, "cp: error writing 'b': No space left on device"),
        ToolError("mkfs.ext4", ["mkfs.ext4"], 1, "No space left on device while writing"),
    ],
)
def test_running_out_of_space_is_one_clear_error(tmp_path: Path, exc: Exception) -> None:
    places = Places(tmp_path, tmp_path, tmp_path)
    with (
        pytest.raises(DiskFullError, match=r"no space left on device in the scratch") as err,
        space.disk_full_errors(places, lambda: Needs(scratch=5 * MiB, output=1 * MiB)),
    ):
        raise exc
    assert "needs about 6.0 MiB there" in str(err.value)
    assert "Traceback" not in str(err.value)


def test_other_errors_pass_through(tmp_path: Path) -> None:
    places = Places(tmp_path, tmp_path, tmp_path)
    with pytest.raises(ToolError), space.disk_full_errors(places, Needs):
        raise ToolError("mke2fs", ["mke2fs"], 1, "Could not allocate block in ext2 filesystem")
    with pytest.raises(PermissionError), space.disk_full_errors(places, Needs):
        raise PermissionError(errno.EACCES, "denied")


def test_outputs_linked_into_the_cache_take_no_room_there() -> None:
    linked = space.estimate(
        10, ("raw", "qcow2"), "zstd", cached_tree=None, store=True, store_links=True
    )
    assert linked.cache == space.tree_estimate(10)
    assert (
        linked.output
        == space.estimate(10, ("raw", "qcow2"), "zstd", cached_tree=None, store=True).output
    )
