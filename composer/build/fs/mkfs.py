"""One file system per partition, built as a file from a directory tree, offline where the
tool can populate from a directory (mkfs.ext4 -d, mkfs.btrfs --rootdir, mkfs.erofs, mkfs.xfs
-p protofile, mkfs.vfat + mtools, mkswap) and through libguestfs where it cannot (an xfs tree
a protofile cannot describe: sticky bits, extended attributes, hard links, odd names)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from composer.build.fs.fs import HOST, Reproducible, make_ext4, make_vfat
from composer.core import tools
from composer.core.errors import ComposerError, HostError
from composer.core.units import human_size
from composer.plan.layout import PartitionPlan
from composer.toolchain.guestfs import handle

FILL_LIMIT = 0.92  # share of a partition the files may take (metadata needs the rest)


def tree_bytes(tree: Path) -> int:
    """Bytes the files of ``tree`` occupy (allocated blocks, hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def check_fits(p: PartitionPlan, tree: Path) -> None:
    need = tree_bytes(tree)
    if p.filesystem != "erofs" and need > p.size * FILL_LIMIT:
        raise ComposerError(
            f"partition {p.number} ({p.mountpoint}): {human_size(need)} of files do not fit in "
            f"{human_size(p.size)}; raise its minsize in the blueprint"
        )


def _sparse(path: Path, size: int) -> None:
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)


def make_filesystem(
    p: PartitionPlan,
    image: Path,
    tree: Path | None,
    *,
    hash_seed: str,
    volume_id: str,
    repro: Reproducible = HOST,
) -> None:
    """Make ``image`` (a file of the partition's size, or smaller for erofs) holding ``tree``."""
    with tempfile.TemporaryDirectory(prefix="empty-", dir=image.parent) as empty:
        src = tree or Path(empty)
        if p.filesystem != "swap":
            check_fits(p, src)
        if p.filesystem == "ext4":
            make_ext4(image, p.size, src, p.fs_uuid, p.fs_label, hash_seed, repro)
        elif p.filesystem == "vfat":
            make_vfat(image, p.size, src, volume_id, p.fs_label.upper()[:11], repro)
        elif p.filesystem == "swap":
            _sparse(image, p.size)
            tools.run(["mkswap", "-U", p.fs_uuid, "-L", p.fs_label, str(image)])
        elif p.filesystem == "btrfs":
            _sparse(image, p.size)
            argv = ["mkfs.btrfs", "-q", "-f", "-U", p.fs_uuid, "-L", p.fs_label]
            tools.run([*argv, "--rootdir", str(src), str(image)])
        elif p.filesystem == "erofs":
            make_erofs(p, image, src)
        elif p.filesystem == "xfs":
            make_xfs(p, image, src)
        else:
            raise ComposerError(f"partition {p.number}: no way to make {p.filesystem!r}")


def make_erofs(p: PartitionPlan, image: Path, tree: Path) -> None:
    image.unlink(missing_ok=True)
    argv = ["mkfs.erofs", "--quiet", "-zlz4hc", f"-U{p.fs_uuid}", "-T0", str(image), str(tree)]
    tools.run(argv)
    if image.stat().st_size > p.size:
        raise ComposerError(
            f"partition {p.number} ({p.mountpoint}): the erofs image is "
            f"{human_size(image.stat().st_size)}, more than its {human_size(p.size)}; raise minsize"
        )


def make_xfs(p: PartitionPlan, image: Path, tree: Path) -> None:
    proto = xfs_protofile(tree)
    _sparse(image, p.size)
    base = ["mkfs.xfs", "-q", "-f", "-L", p.fs_label, "-m", f"uuid={p.fs_uuid}"]
    if proto is not None:
        proto_file = image.with_suffix(".proto")
        proto_file.write_text(proto)
        tools.run([*base, "-p", str(proto_file), str(image)])
        return
    tools.run([*base, str(image)])
    populate_with_guestfs(image, tree)


_MODE_TYPES = {
    stat.S_IFREG: "-",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
    stat.S_IFIFO: "p",
}


def _proto_mode(st: os.stat_result) -> str | None:
    kind = _MODE_TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None or st.st_mode & stat.S_ISVTX:
        return None  # sockets; the sticky bit has no protofile spelling
    u = "u" if st.st_mode & stat.S_ISUID else "-"
    g = "g" if st.st_mode & stat.S_ISGID else "-"
    return f"{kind}{u}{g}{st.st_mode & 0o777:03o}"


def _plain(text: str) -> bool:
    return bool(text) and not any(c.isspace() or c in ":$" for c in text)


def xfs_protofile(tree: Path) -> str | None:
    """An mkfs.xfs protofile that recreates ``tree``, or None if one cannot describe it."""
    root = os.lstat(tree)
    mode = _proto_mode(root)
    if mode is None or not _plain(str(tree)):
        return None
    lines = ["dps-composer", "0 0", f"{mode} {root.st_uid} {root.st_gid}"]
    if not _proto_dir(tree, lines, 1):
        return None
    lines.append("$")
    return "\n".join(lines) + "\n"


def _proto_dir(path: Path, lines: list[str], depth: int) -> bool:
    pad = " " * depth
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        mode = _proto_mode(st)
        if (
            mode is None
            or not _plain(entry.name)
            or os.listxattr(entry.path, follow_symlinks=False)
        ):
            return False
        head = f"{pad}{entry.name} {mode} {st.st_uid} {st.st_gid}"
        if mode[0] == "-":
            if st.st_nlink > 1:
                return False
            lines.append(f"{head} {entry.path}")
        elif mode[0] == "l":
            target = os.readlink(entry.path)
            if not _plain(target):
                return False
            lines.append(f"{head} {target}")
        elif mode[0] in "bc":
            lines.append(f"{head} {os.major(st.st_rdev)} {os.minor(st.st_rdev)}")
        elif mode[0] == "d":
            lines.append(head)
            if not _proto_dir(Path(entry.path), lines, depth + 1):
                return False
            lines.append(f"{pad}$")
        else:
            lines.append(head)
    return True


def populate_with_guestfs(image: Path, tree: Path) -> None:
    """Copy ``tree`` (owners, modes, xattrs, hard links) into the file system on ``image``."""
    tarball = image.with_suffix(".tar")
    tools.run(
        ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-C", str(tree),
         "-cf", str(tarball), "."],
    )  # fmt: skip
    try:
        with handle() as g:
            g.add_drive_opts(str(image), format="raw", readonly=False)
            g.launch()
            g.mount("/dev/sda", "/")
            g.tar_in(str(tarball), "/", xattrs=True, acls=True)
            g.umount_all()
            g.shutdown()  # errors writing back the file system show here
    except RuntimeError as err:
        raise HostError(f"libguestfs could not fill {image.name}: {err}") from err
    finally:
        tarball.unlink(missing_ok=True)
