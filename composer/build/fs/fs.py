"""File systems built as plain files, offline: no loop devices, no mounts."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from composer.build.fs.fattimes import fix_fat_times
from composer.core import tools
from composer.core.files import next_data
from composer.image.read import MTOOLS_ENV


@dataclass(frozen=True)
class Reproducible:
    """How file systems are made bit-identical: every timestamp at ``epoch`` (None: now), and
    mke2fs from the tools tree (e2fsprogs >= 1.47.1 honours SOURCE_DATE_EPOCH for every inode
    time; bookworm's 1.47.0 copies the source files' ctimes)."""

    epoch: int | None = None
    tools_tree: Path | None = None

    def env(self) -> dict[str, str]:
        if self.epoch is None:
            return {}
        return {"SOURCE_DATE_EPOCH": str(self.epoch), "E2FSPROGS_FAKE_TIME": str(self.epoch)}

    def program(self, name: str) -> list[str]:
        """argv prefix running ``name`` from the tools tree with its own libraries (no chroot,
        so host paths work), else the host's."""
        tree = self.tools_tree
        if tree is None:
            return [name]
        loaders = sorted(tree.glob("usr/lib*/ld-linux*.so.*")) + sorted(
            tree.glob("usr/lib/*-linux-gnu*/ld-linux*.so.*")
        )
        exe = next(
            (tree / d / name for d in ("usr/sbin", "usr/bin") if (tree / d / name).exists()), None
        )
        if not loaders or exe is None:
            return [name]
        libs = ":".join(str(p) for p in sorted(tree.glob("usr/lib/*-linux-gnu*")) if p.is_dir())
        return [str(loaders[0]), "--library-path", libs, str(exe)]


HOST = Reproducible()


def _sparse_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)


def make_vfat(
    image: Path,
    size: int,
    tree: Path,
    volume_id: str,
    label: str,
    repro: Reproducible = HOST,
) -> None:
    """A FAT32 file system of ``size`` bytes holding the contents of ``tree``."""
    image.unlink(missing_ok=True)
    tools.run(
        [
            "mkfs.vfat",
            "-F",
            "32",
            "-n",
            label,
            "-i",
            volume_id,
            "-C",
            str(image),
            str(size // 1024),
        ],
    )
    entries = sorted(tree.iterdir())
    if entries:
        tools.run(
            ["mcopy", "-s", "-p", "-m", "-i", str(image), *map(str, entries), "::/"],
            env=MTOOLS_ENV,
        )
    if repro.epoch is not None:
        fix_fat_times(image, repro.epoch)


def make_ext4(
    image: Path,
    size: int,
    tree: Path,
    fs_uuid: str,
    label: str,
    hash_seed: str,
    repro: Reproducible = HOST,
) -> None:
    """An ext4 file system of ``size`` bytes populated from ``tree`` (ownership kept: root)."""
    image.unlink(missing_ok=True)
    _sparse_file(image, size)
    tools.run(
        [
            *repro.program("mke2fs"),
            "-t",
            "ext4",
            "-q",
            "-F",
            "-L",
            label,
            "-U",
            fs_uuid,
            "-E",
            f"hash_seed={hash_seed},root_owner=0:0,lazy_itable_init=1",
            "-d",
            str(tree),
            str(image),
        ],
        env=repro.env(),
    )


def copy_into(src: Path, dest: Path, offset: int) -> None:
    """Copy ``src`` into ``dest`` at byte ``offset``, keeping holes (only data extents move)."""
    size = src.stat().st_size
    with open(src, "rb") as fin, open(dest, "r+b") as fout:
        sfd, dfd = fin.fileno(), fout.fileno()
        pos = 0
        while pos < size:
            data = next_data(sfd, pos, size)
            if data >= size:  # the rest is a hole
                break
            hole = os.lseek(sfd, data, os.SEEK_HOLE)
            _copy_range(sfd, dfd, data, offset + data, hole - data)
            pos = hole


def _copy_range(sfd: int, dfd: int, src_off: int, dst_off: int, length: int) -> None:
    while length > 0:
        try:
            n = os.copy_file_range(sfd, dfd, length, src_off, dst_off)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            # two file systems (scratch and output directory on different ones): Linux >= 5.19
            # copies across file systems only between two of one type that supports it
            n = os.pwrite(dfd, os.pread(sfd, min(length, 1 << 20), src_off), dst_off)
        if n == 0:
            raise OSError("copy_file_range made no progress")
        src_off += n
        dst_off += n
        length -= n
