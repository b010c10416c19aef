"""Read files out of file systems inside a raw image, offline (mtools, debugfs)."""

from __future__ import annotations

from pathlib import Path

from composer.core import tools
from composer.core.errors import ToolError
from composer.core.workdir import scratch_dir, work_parent

# mtools on an image file: no geometry check, long names as written
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}


def read_vfat_file(image: Path, offset: int, path: str) -> bytes:
    with scratch_dir("read", work_parent()) as tmp:
        dest = tmp / "file"
        tools.run(
            ["mcopy", "-n", "-i", f"{image}@@{offset}", f"::{path}", str(dest)], env=MTOOLS_ENV
        )
        return dest.read_bytes()


def list_vfat_dir(image: Path, offset: int, path: str) -> list[str]:
    text = tools.output(["mdir", "-b", "-i", f"{image}@@{offset}", f"::{path}"], env=MTOOLS_ENV)
    return sorted(line.rstrip("/").rsplit("/", 1)[-1] for line in text.splitlines() if line.strip())


def read_ext4_file(image: Path, offset: int, path: str) -> bytes:
    with scratch_dir("read", work_parent()) as tmp:
        dest = tmp / "file"
        tools.run(["debugfs", "-R", f"dump {path} {dest}", f"{image}?offset={offset}"])
        if not dest.exists():
            raise FileNotFoundError(f"{path} not found in the ext4 file system at offset {offset}")
        return dest.read_bytes()


def list_vfat_tree(image: Path, offset: int) -> list[str]:
    """Every file (not directory) in the vfat file system, as /-rooted paths, sorted."""
    try:
        text = tools.output(["mdir", "-/", "-b", "-i", f"{image}@@{offset}", "::/"], env=MTOOLS_ENV)
    except ToolError as err:
        if 'File "::/" not found' in err.stderr_tail:  # mdir's answer for an empty root
            return []
        raise
    paths = [ln.strip().removeprefix("::") for ln in text.splitlines() if ln.strip()]
    return sorted(p for p in paths if p and not p.endswith("/"))
