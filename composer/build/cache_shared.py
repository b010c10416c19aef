"""A stage cache shared by build hosts: complete entries by content key in a store named by a
URL (``DPS_COMPOSER_CACHE_URL``; any fsspec file system: ``file:///dir`` on a shared disk,
``s3://…``, ``gs://…``, ``az://…`` where the team has them), behind each host's own cache.

The rules are the local cache's (composer/build/cache.py): only complete entries are ever
visible, and nothing is used unchecked.

- An entry travels as one tar archive (``STAGE/KEY.tar``: owners, modes, times, links,
  sparse files and extended attributes kept, so a root tree arrives as it was made) with a
  record beside it (``STAGE/KEY.json``: the archive's size and sha256). Push uploads the
  archive under a temporary name, moves it into place, and writes the record last, also
  under a temporary name moved into place: a reader sees no record (a miss) or a complete
  archive.
- Pull downloads the archive into a locked temporary of the local cache, checks its size
  and sha256 against the record, unpacks it into another locked temporary and checks the
  entry in full against its own ``entry.json`` (every file's sha256, a root tree's stat
  fingerprint and content digest) before renaming it into the local cache. Anything that
  does not match is a miss, and the build makes the stage itself.

The store is as trusted as the local cache: whoever can write it can change what images
are made from, exactly as with a shared cache directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from composer.build import cache_record
from composer.build.cache import TEMPORARY, StageCache
from composer.core import tools
from composer.core.errors import ComposerError
from composer.core.hashing import sha256_file
from composer.core.workdir import owned_dir

CACHE_URL_ENV = "DPS_COMPOSER_CACHE_URL"
TAR = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"]


class StoreError(ComposerError):
    """The shared store's URL cannot be used."""

    exit_code = 2


class SharedStore:
    def __init__(self, url: str) -> None:
        import fsspec

        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError, OSError) as exc:
            raise StoreError(f"--cache-url {url!r}: {exc}") from None
        self.url = url

    def _path(self, stage: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/stages/{stage}/{name}"

    def has(self, stage: str, key: str) -> bool:
        return bool(self.fs.exists(self._path(stage, f"{key}.json")))

    def _put_file(self, local: Path, stage: str, name: str) -> None:
        """Upload under a temporary name, then move into place (atomic on a file system;
        an object store's put is whole anyway)."""
        tmp = self._path(stage, f".tmp-{uuid.uuid4().hex}-{name}")
        self.fs.makedirs(self._path(stage, ""), exist_ok=True)
        self.fs.put_file(str(local), tmp)
        try:
            self.fs.mv(tmp, self._path(stage, name))
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def push(self, cache: StageCache, stage: str, key: str, entry: Path) -> bool:
        """Upload a complete local entry; False when the store has it already."""
        if self.has(stage, key):
            return False
        with owned_dir(cache.cache, f"{TEMPORARY}push-") as tmp:
            archive = tmp / f"{key}.tar"
            tools.run(["tar", "--create", "--format=posix", "--sparse", *TAR, "--file", str(archive),
                       "--directory", str(entry), "--", "."])  # fmt: skip
            record = {"stage": stage, "key": key, "size": archive.stat().st_size,
                      "sha256": sha256_file(archive)}  # fmt: skip
            (tmp / f"{key}.json").write_text(json.dumps(record) + "\n")
            self._put_file(archive, stage, f"{key}.tar")
            self._put_file(tmp / f"{key}.json", stage, f"{key}.json")
        return True

    def _record(self, stage: str, key: str) -> dict[str, Any] | None:
        try:
            with self.fs.open(self._path(stage, f"{key}.json"), "rb") as fh:
                data = json.loads(fh.read(65536))
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def pull(self, cache: StageCache, stage: str, key: str) -> str | None:
        """Fetch the entry into the local cache: None when it arrived whole and checked, else
        why not ("absent" when the store does not have it)."""
        record = self._record(stage, key)
        if record is None:
            return "absent"
        parent = cache.root / stage
        parent.mkdir(parents=True, exist_ok=True)
        with owned_dir(cache.cache, f"{TEMPORARY}pull-") as tmp:
            archive = tmp / f"{key}.tar"
            self.fs.get_file(self._path(stage, f"{key}.tar"), str(archive))
            size, digest = archive.stat().st_size, sha256_file(archive)
            if size != record.get("size") or digest != record.get("sha256"):
                return f"archive is {size} bytes, sha256 {digest}; its record says " \
                       f"{record.get('size')} bytes, sha256 {record.get('sha256')}"  # fmt: skip
            with owned_dir(parent, f"{TEMPORARY}{key}-") as unpacked:
                tools.run(["tar", "--extract", "--same-permissions", *TAR, "--file",
                           str(archive), "--directory", str(unpacked)])  # fmt: skip
                problem = cache_record.check(unpacked, full=True, hash_files=True)
                if problem is not None:
                    return problem
                os.utime(unpacked / cache_record.ENTRY)
                cache.adopt(unpacked, stage, key)
        return None


def from_env() -> SharedStore | None:
    url = os.environ.get(CACHE_URL_ENV, "").strip()
    return SharedStore(url) if url else None
