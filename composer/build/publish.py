"""A build's results into its output directory, and an image's outputs into and out of the
stage cache.

A build makes everything in its staging directory, then publishes with the output directory
locked (another build publishing into the same directory waits): the old manifest of the same
image goes first, then every output is renamed into place, outputs the old manifest listed
that this build no longer makes are removed, and the new ``NAME.manifest.json`` comes last.
Two builds into one directory therefore never mix their files, and a manifest never describes
files it did not list. No name is written through: a target that exists as anything but a
regular file (a planted symlink, a device, a directory) is refused (composer/core/files.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from composer.build import cache_record
from composer.core import locks, tools
from composer.core.errors import ComposerError
from composer.core.files import check_target, fsync_dir, fsync_file, plain_name, sync_tree
from composer.manifest.load import OUTPUT_LOCK, ManifestError, manifest_name, read_manifest
from composer.manifest.model import Manifest, Output

ENTRY_MANIFEST = "manifest.json"  # the manifest's name inside an image cache entry


def log_name(image_name: str) -> str:
    return f"{image_name}.build.log"


def publish(
    image_name: str, files: Sequence[Path], manifest: Path, output_dir: Path
) -> tuple[list[Path], Path]:
    """Move ``files`` (outputs, varstore, build log) and then ``manifest`` from the staging
    directory into ``output_dir``; (the published files, the published manifest)."""
    sync_tree(manifest.parent)  # on disk before a manifest vouches for them
    with locks.held(output_dir / OUTPUT_LOCK):
        moves = [(f, output_dir / f.name) for f in files]
        manifest_dest = output_dir / manifest_name(image_name)
        for _, dest in [*moves, (manifest, manifest_dest)]:
            check_target(dest)
        stale = _stale(manifest_dest, {dest.name for _, dest in moves})
        manifest_dest.unlink(missing_ok=True)
        for src, dest in moves:
            os.replace(src, dest)
        for path in stale:
            path.unlink(missing_ok=True)
        os.replace(manifest, manifest_dest)
        fsync_dir(output_dir)
    return [dest for _, dest in moves], manifest_dest


def _stale(old_manifest: Path, new: set[str]) -> list[Path]:
    """Files the previous manifest of this image listed that this build does not make (none
    when it cannot be read: a damaged manifest vouches for nothing)."""
    if not old_manifest.exists():
        return []
    try:
        names = read_manifest(old_manifest).files()
    except ManifestError:
        return []
    found = []
    for name in names:
        if not plain_name(name) or name in new:
            continue
        path = old_manifest.parent / name
        if path.is_file() and not path.is_symlink():
            found.append(path)
    return found


def keep_log(log: Path, output_dir: Path, image_name: str) -> Path | None:
    """Move a failed build's log to ``output_dir/NAME.build.log``; its path, or None when
    there is none or it cannot be put there."""
    if not log.is_file():
        return None
    dest = output_dir / log_name(image_name)
    try:
        with locks.held(output_dir / OUTPUT_LOCK):
            check_target(dest)
            os.replace(log, dest)
            fsync_dir(output_dir)
    except (ComposerError, OSError):
        return None
    return dest


def copy_file(src: Path, dest: Path) -> None:
    """Sparse files stay sparse (disk images)."""
    tools.run(["cp", "--reflink=auto", "--sparse=always", "--", str(src), str(dest)])


def link_or_copy(src: Path, dest: Path) -> None:
    """A second name for ``src``'s file when both are on one file system (no data copied),
    else a copy."""
    try:
        os.link(src, dest)
    except OSError:  # another file system (EXDEV), or one without hard links
        copy_file(src, dest)


def store_image(outputs: Sequence[Path], manifest: Callable[[], Path], entry: Path) -> None:
    """An image's outputs and then its manifest (``manifest()``: the staged file, which may be
    made while the outputs are stored) into the cache entry directory ``entry``.

    The outputs are hard links to the files the build then publishes: storing costs no copy
    (about 600 MB for the default image). An output changed in place afterwards (a
    ``boot --writable``, ``fixup`` without ``-o``) changes the entry with it; that is found when
    the entry is next used, as every file is copied out and hashed then (``reuse_image``), and
    the image is built again. Reuse always copies, so two builds never share an output."""
    for path in outputs:
        link_or_copy(path, entry / path.name)
    copy_file(manifest(), entry / ENTRY_MANIFEST)


def _copy_out(entry: Path, staging: Path, name: str, want: Mapping[str, Any]) -> str | None:
    """One file of an image entry copied into ``staging``, checked against its record and put
    on disk (publishing needs it there; done here, beside the other files' copies and hashes);
    what is wrong with it, if anything."""
    try:
        if not stat.S_ISREG((entry / name).lstat().st_mode):  # a link is never followed
            return f"{name} is not a regular file"
    except FileNotFoundError:
        return f"{name} is missing"
    copy_file(entry / name, staging / name)
    wrong = cache_record.check_file(staging / name, name, want, hash_file=True)
    if wrong is not None:
        return cache_record.shared_hint(wrong, entry / name)
    fsync_file(staging / name)
    return None


def known_digests(outputs: Sequence[Output]) -> dict[str, str]:
    """The sha256 the manifest lists for the outputs (no need to hash them again)."""
    return {o.file: o.sha256 for o in outputs}


def reuse_image(entry: Path, staging: Path) -> tuple[list[Path], Manifest] | str:
    """Copy an image entry's outputs into ``staging``, each checked against the entry's
    record by size and sha256 (what is published is what was checked), two files at a time;
    (the copies, the manifest) or what is wrong with the entry (its first file in name order
    that is wrong)."""
    record, problem = cache_record.read_record(entry)
    content = cache_record.content_of(record) if record is not None else None
    if content is None or ENTRY_MANIFEST not in content:
        return problem or "no content record"
    names = sorted(content)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="reuse") as pool:
        found = list(pool.map(lambda name: _copy_out(entry, staging, name, content[name]), names))
    if problems := [p for p in found if p is not None]:
        for name in names:  # the build makes its own: no copy of a damaged entry takes space
            (staging / name).unlink(missing_ok=True)
        return problems[0]
    files = [staging / name for name in names if name != ENTRY_MANIFEST]
    try:
        manifest = read_manifest(staging / ENTRY_MANIFEST)
    except ManifestError as err:
        return str(err)
    (staging / ENTRY_MANIFEST).unlink()
    return files, manifest
