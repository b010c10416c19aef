"""Every digest of files, trees and inputs the composer computes: one place.

- :func:`sha256_file`: a file's sha256 (image outputs, cache entries, UKIs, varstores); the holes
  of a sparse file are hashed as the zeros they read as, without reading them.
- :func:`tree_digest`: a directory tree's content (every path, its type and permissions, each
  file's sha256 and each link's target), for cache records and for inputs of cache keys that are trees (the
  composer's own code, local repositories, Secure Boot key directories).
- :func:`key_of`: a stable short hash of JSON-able inputs: cache keys and memo names.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Collection
from pathlib import Path
from typing import Any

from composer.core.files import next_data

CHUNK = 4 * 1024 * 1024
_ZEROS = memoryview(bytes(CHUNK))


def sha256_file(path: Path) -> str:
    """sha256 of a file; holes of sparse files are hashed as zeros without reading them."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            data = next_data(fd, pos, size)
            _update_zeros(h, data - pos)
            if data >= size:
                break
            end = os.lseek(fd, data, os.SEEK_HOLE)
            fh.seek(data)
            left = end - data
            while left > 0 and (chunk := fh.read(min(CHUNK, left))):
                h.update(chunk)
                left -= len(chunk)
            pos = end
    return h.hexdigest()


def _update_zeros(h: Any, n: int) -> None:
    while n > 0:
        step = min(n, CHUNK)
        h.update(_ZEROS[:step])
        n -= step


def walk(top: Path, skip: Collection[str] = ()) -> list[tuple[str, os.stat_result]]:
    """Every path under ``top`` (itself as "."), sorted, with its lstat; links are not
    followed, directories named in ``skip`` (``__pycache__``) are left out with their content."""
    found = [(".", os.lstat(top))]
    stack = [top]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) and entry.name in skip:
                    continue
                found.append((os.path.relpath(entry.path, top), st))
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(entry.path))
    found.sort(key=lambda item: item[0])
    return found


def tree_digest(top: Path, skip: Collection[str] = ()) -> str:
    """The content digest of the tree at ``top``: paths, types and permissions, file bytes,
    link targets."""
    h = hashlib.sha256()
    for rel, st in walk(top, skip):
        mode = st.st_mode
        if stat.S_ISREG(mode):
            what = sha256_file(top / rel)
        elif stat.S_ISLNK(mode):
            what = os.readlink(top / rel)
        else:
            what = ""
        h.update(f"{rel}\0{mode:o}\0{what}\n".encode(errors="surrogateescape"))
    return h.hexdigest()


def key_of(inputs: Any) -> str:
    """A stable hash of JSON-able inputs (dictionaries in key order; anything else as str)."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
