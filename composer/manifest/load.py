"""An image's manifest, ``NAME.manifest.json`` beside ``NAME.raw``, ``NAME.qcow2``, …: what
`boot` judges the image against (expected root type, PCRs, partitions, varstore, timeout).

`boot` finds it by the image's name and checks the image's sha256 against the one the
manifest lists for that file. When they differ (the image was changed after the build, or the
manifest belongs to another build) it refuses, saying so, rather than judging the image
against expectations that are not its own; ``boot --manifest FILE`` judges an image against a
manifest on purpose (a deliberately modified copy), noting whether the sha256 matches.

A manifest found beside an image is image-controlled input: it is read through the typed
model (composer/manifest/model.py) after its ``manifest_version`` is checked, and the
varstore it names must be a plain file name in the manifest's own directory and a regular
file (no path, no link).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from composer.core import locks
from composer.core.errors import ComposerError
from composer.core.files import plain_name
from composer.core.hashing import sha256_file
from composer.image.formats import FORMATS
from composer.manifest.model import MANIFEST_VERSION, SUFFIX, Manifest

OUTPUT_LOCK = ".dps-composer-output.lock"  # held while a build publishes into a directory
DEFAULT_TIMEOUT = 600.0


class ManifestError(ComposerError):
    """A manifest that cannot be used for an image (names the files and why)."""

    exit_code = 2


def manifest_name(image_name: str) -> str:
    return f"{image_name}{SUFFIX}"


def image_stem(file_name: str) -> str | None:
    """NAME of an output file NAME.<format> (NAME.raw.zst: NAME), None for other names."""
    for fmt in sorted(FORMATS, key=len, reverse=True):
        if file_name.endswith(f".{fmt}") and len(file_name) > len(fmt) + 1:
            return file_name[: -len(fmt) - 1]
    return None


def find_manifest(image: Path) -> Path | None:
    """The manifest beside ``image`` by name (NAME.manifest.json for NAME.qcow2), if any."""
    stem = image_stem(image.name)
    if stem is None:
        return None
    path = image.parent / manifest_name(stem)
    return path if path.is_file() else None


@dataclass(frozen=True)
class ImageManifest:
    path: Path
    manifest: Manifest
    note: str  # how it was matched to the image, for the verdict's notes

    @property
    def timeout(self) -> float:
        return self.manifest.validate_.timeout

    def varstore(self) -> Path | None:
        """The varstore the build shipped beside the image (Secure Boot keys, boot entries)."""
        if self.manifest.varstore is None:
            return None
        name = self.manifest.varstore.file
        if not plain_name(name):
            raise ManifestError(
                f"{self.path}: varstore.file must be a plain file name in the manifest's "
                f"directory, not {name!r}"
            )
        path = self.path.parent / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise ManifestError(
                f"{self.path}: names varstore {name}, but {path} does not exist"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{self.path}: varstore {path} is not a regular file")
        return path


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``, checked: a JSON object of a ``manifest_version`` this
    composer reads, every key as the model says (ManifestError naming the file otherwise)."""
    try:
        text = path.read_text()
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{path}: cannot read manifest: {err}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: manifest is not a JSON object")
    version = data.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise ManifestError(
            f"{path}: manifest_version {version!r} is not one this dps-composer reads "
            f"({MANIFEST_VERSION}): it was written by another version; rebuild the image, or "
            "boot it with a dps-composer of that version"
        )
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5]
        )
        raise ManifestError(f"{path}: not a valid manifest: {problems}") from None


def load(image: Path, explicit: Path | None = None) -> ImageManifest | None:
    """The manifest to judge ``image`` against: ``explicit`` (``--manifest``), else the one
    beside it by name (None: the image is foreign). Raises ManifestError when the manifest
    found by name does not list the image with its sha256."""
    with _publishing_paused(image.parent) as held:
        try:
            return _locate(image, explicit)
        except ManifestError:
            # Read without the lock (no build had published here yet), and now there is one:
            # a build began publishing meanwhile. Read again, holding it.
            if held or not (image.parent / OUTPUT_LOCK).exists():
                raise
    with _publishing_paused(image.parent):
        return _locate(image, explicit)


def _locate(image: Path, explicit: Path | None) -> ImageManifest | None:
    path = explicit if explicit is not None else find_manifest(image)
    if path is None:
        return None
    try:
        st = image.stat()
        mst = path.stat()
    except OSError as err:
        raise ManifestError(f"{err.filename}: {err.strerror}") from None
    version = (st.st_ino, st.st_size, st.st_mtime_ns, mst.st_ino, mst.st_mtime_ns)
    return _load(image, path, explicit is not None, version)


@functools.lru_cache(maxsize=16)
def _load(image: Path, path: Path, explicit: bool, _version: tuple[int, ...]) -> ImageManifest:
    """Memoized per image and manifest version: `boot` asks for the timeout, the varstore and
    the expectations, and an image's sha256 takes seconds."""
    manifest = read_manifest(path)
    entry = manifest.output(image.name)
    recorded = entry.sha256 if entry is not None else None
    actual = sha256_file(image) if recorded is not None or explicit else None
    if explicit:
        same = (
            "matches"
            if recorded == actual
            else "differs from the image's; judged against it as asked"
        )
        return ImageManifest(
            path, manifest, f"manifest {path} (given; its sha256 for {image.name} {same})"
        )
    if recorded is None:
        raise ManifestError(
            f"{image}: {path.name} beside it lists no output named {image.name} with a sha256; "
            f"give the manifest to judge it against with --manifest, or move {path.name} away "
            "to boot it as an image without a manifest"
        )
    if actual != recorded:
        raise ManifestError(
            f"{image}: its sha256 {actual} does not match the sha256 {recorded} that "
            f"{path.name} records for it: the image changed after the build, or the manifest "
            "is another build's; rebuild it, judge it against that manifest anyway with "
            f"--manifest {path}, or move {path.name} away to boot it as an image without one"
        )
    return ImageManifest(path, manifest, f"manifest {path} (sha256 of {image.name} matches)")


@contextlib.contextmanager
def _publishing_paused(directory: Path) -> Iterator[bool]:
    """A shared hold on the directory's output lock: no build publishes into it meanwhile
    (nothing to hold where no build ever published, or the directory is read-only); whether
    it is held."""
    try:
        fd = locks.acquire(directory / OUTPUT_LOCK, shared=True, create=False)
    except OSError:
        fd = None
    try:
        yield fd is not None
    finally:
        if fd is not None:
            locks.release(fd)
