"""File systems made from trees, read back: the xfs protofile path and the libguestfs path
(for what a protofile cannot describe), btrfs and erofs. No image build, no boot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from composer.build.fs.mkfs import make_filesystem, xfs_protofile
from composer.core.units import MiB
from composer.plan.layout import PartitionPlan

pytestmark = pytest.mark.integration

FS_UUID = "3f0b1d7e-5a55-4c2e-9a0e-6f1d2c3b4a59"


def _part(fs: str, size: int = 320 * MiB) -> PartitionPlan:
    return PartitionPlan(1, "srv", "srv", "", "", "srv", 0, size, fs, FS_UUID, "data", "/srv")


def _tree(root: Path, awkward: bool) -> Path:
    (root / "d/sub").mkdir(parents=True)
    (root / "d/sub/file").write_text("hello\n")
    (root / "d/link").symlink_to("sub/file")
    os.chown(root / "d/sub/file", 1234, 5678)
    if awkward:
        (root / "tmp").mkdir(mode=0o1777)
        (root / "tmp").chmod(0o1777)
        os.link(root / "d/sub/file", root / "d/hard")
        os.setxattr(root / "d/sub/file", "user.dps", b"composer")
    return root


def _blkid(image: Path) -> dict[str, str]:
    out = subprocess.run(
        ["blkid", "-p", "-o", "export", str(image)], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_trees_become_file_systems(tmp_path: Path) -> None:
    """xfs (protofile), btrfs, erofs from a plain tree; xfs of an awkward tree through
    libguestfs; all read back in one libguestfs appliance (one launch: TCG is slow)."""
    plain = _tree(tmp_path / "plain", awkward=False)
    awkward = _tree(tmp_path / "awkward", awkward=True)
    assert xfs_protofile(plain) is not None  # the offline path
    assert xfs_protofile(awkward) is None  # sticky bit, xattr, hard link: libguestfs
    images = []
    for fs, tree in (("xfs", plain), ("btrfs", plain), ("erofs", plain), ("xfs", awkward)):
        image = tmp_path / f"{fs}-{tree.name}.img"
        make_filesystem(_part(fs), image, tree, hash_seed="", volume_id="")
        info = _blkid(image)
        assert info["TYPE"] == fs and info["UUID"] == FS_UUID, info
        images.append((image, tree is awkward))
    _check_with_guestfs(images)


def _check_with_guestfs(images: list[tuple[Path, bool]]) -> None:
    import guestfs

    os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        for image, _ in images:
            g.add_drive_opts(str(image), format="raw", readonly=True)
        g.launch()
        for device, (image, awkward) in zip(g.list_devices(), images, strict=True):
            g.mount_ro(device, "/")
            assert g.cat("/d/sub/file") == "hello\n", image
            st = g.statns("/d/sub/file")
            assert (st["st_uid"], st["st_gid"]) == (1234, 5678), image
            assert g.readlink("/d/link") == "sub/file"
            if awkward:
                assert g.statns("/tmp")["st_mode"] & 0o7777 == 0o1777
                assert g.statns("/d/hard")["st_ino"] == st["st_ino"]
                assert g.getxattr("/d/sub/file", "user.dps") == b"composer"
            g.umount_all()
    finally:
        g.close()
