"""What a stage-cache entry holds, recorded when the entry is made and checked when it is used.

Each top-level file of an entry is recorded with its size and sha256; each top-level directory
(a root tree) with two digests:

- a *stat fingerprint*: every path under it with its type, mode, owner, size, mtime and link
  target (device numbers for device nodes), hashed in a fixed order. It costs one ``lstat``
  per file (about 0.1 s for a 340 MB root tree, measured), so it is checked on every hit. It
  catches missing, extra, truncated or replaced files, changed modes or owners and files
  rewritten in place (a write sets the mtime); it misses a change that keeps size and mtime
  (bit rot, a deliberate edit that restores the mtime).
- a *content digest* (composer/core/hashing.py): the sha256 of every regular file's bytes and
  every link's target, with the paths, types and permissions. Checked by ``dps-composer cache check``, which catches what the fingerprint
  misses.

A hit's files are checked by size (cheap) and, where the caller asks, by sha256: the UKI on
every hit, image outputs after they were copied out (the copy is what gets published). An
image entry's outputs are hard links to the files its build published (composer/build/publish.py),
so an output changed in place later shows here as a changed entry, and is named as such.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from composer.core.files import plain_name
from composer.core.hashing import sha256_file, tree_digest, walk

ENTRY = "entry.json"
RECORD_VERSION = 3  # 3: the content digest covers permissions
SHARED_HINT = (  # an image entry's outputs are hard links to the published files
    " (the entry shares this file with a published output, which was changed in place"
    " since: a --writable boot, fixup without -o)"
)


def _stat_line(top: Path, rel: str, st: os.stat_result) -> str:
    mode = st.st_mode
    extra = ""
    if stat.S_ISLNK(mode):
        extra = os.readlink(top / rel)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        extra = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    size = st.st_size if stat.S_ISREG(mode) else 0
    return f"{rel}\0{mode:o}\0{st.st_uid}\0{st.st_gid}\0{size}\0{st.st_mtime_ns}\0{extra}\n"


def tree_fingerprint(top: Path) -> tuple[int, str]:
    """(number of paths, stat fingerprint) of the tree at ``top``."""
    h = hashlib.sha256()
    paths = walk(top)
    for rel, st in paths:
        h.update(_stat_line(top, rel, st).encode(errors="surrogateescape"))
    return len(paths), h.hexdigest()


def describe(entry: Path, known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The content record of the entry directory ``entry``. ``known``: sha256 of files the
    caller already hashed (image outputs: the build's manifest has them)."""
    known = known or {}
    content: dict[str, Any] = {}
    for path in sorted(entry.iterdir()):
        st = path.lstat()
        if path.name == ENTRY:
            continue
        if stat.S_ISDIR(st.st_mode):
            count, fingerprint = tree_fingerprint(path)
            content[path.name] = {
                "kind": "tree",
                "paths": count,
                "fingerprint": fingerprint,
                "digest": tree_digest(path),
            }
        elif stat.S_ISREG(st.st_mode):
            digest = known.get(path.name) or sha256_file(path)
            content[path.name] = {"kind": "file", "size": st.st_size, "sha256": digest}
        else:
            raise ValueError(f"{path}: a cache entry holds only files and directories")
    return content


def read_record(entry: Path) -> tuple[dict[str, Any] | None, str]:
    """(the entry's record, "") or (None, what is wrong with it)."""
    meta = entry / ENTRY
    try:
        text = meta.read_text()
    except FileNotFoundError:
        return None, f"no {ENTRY}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{ENTRY} unreadable: {exc}"
    if not text.strip():
        return None, f"{ENTRY} is empty"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{ENTRY} is not valid JSON ({exc})"
    if not isinstance(record, dict):
        return None, f"{ENTRY} is not a JSON object"
    content = record.get("content")
    if isinstance(content, dict) and (bad := [n for n in content if not plain_name(n)]):
        # every name is joined to the entry and to a build's staging directory
        return None, f"{ENTRY} names {bad[0]!r}, which is not a file of the entry"
    return record, ""


def content_of(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record's content section, None for entries made before content was recorded."""
    content = record.get("content")
    if record.get("version") != RECORD_VERSION or not isinstance(content, dict) or not content:
        return None
    return content


def check(entry: Path, *, full: bool = False, hash_files: bool = False) -> str | None:
    """What is wrong with ``entry`` (None: it matches its record). Sizes and tree
    fingerprints always; file sha256 with ``hash_files`` or ``full``, tree content with
    ``full``. Files the record does not name make an entry damaged too."""
    record, problem = read_record(entry)
    if record is None:
        return problem
    content = content_of(record)
    if content is None:
        return "made by an older dps-composer: no content record to check it against"
    present = {p.name for p in entry.iterdir()} - {ENTRY}
    if extra := sorted(present - set(content)):
        return f"files the record does not name: {', '.join(extra)}"
    for name, want in content.items():
        wrong = _check_one(entry / name, name, want, full=full, hash_files=hash_files or full)
        if wrong:
            return wrong
    return None


def _check_one(
    path: Path, name: str, want: Mapping[str, Any], *, full: bool, hash_files: bool
) -> str | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return f"{name} is missing"
    if want.get("kind") == "tree":
        if not stat.S_ISDIR(st.st_mode):
            return f"{name} is not a directory"
        count, fingerprint = tree_fingerprint(path)
        if (count, fingerprint) != (want.get("paths"), want.get("fingerprint")):
            return f"{name}: the tree changed ({count} paths, {want.get('paths')} recorded)"
        if full and tree_digest(path) != want.get("digest"):
            return f"{name}: file contents differ from the recorded digest"
        return None
    if not stat.S_ISREG(st.st_mode):
        return f"{name} is not a regular file"
    wrong = check_file(path, name, want, hash_file=hash_files)
    return shared_hint(wrong, path) if wrong else None


def shared_hint(wrong: str, entry_file: Path) -> str:
    """``wrong`` (what is wrong with an entry's file), saying so when the file has another
    name: a published output that may have been changed in place."""
    return wrong + SHARED_HINT if entry_file.stat().st_nlink > 1 else wrong


def check_file(path: Path, name: str, want: Mapping[str, Any], *, hash_file: bool) -> str | None:
    """What is wrong with the file ``path`` against its record ``want`` (size, sha256)."""
    size = path.stat().st_size
    if size != want.get("size"):
        return f"{name}: {size} bytes, {want.get('size')} recorded (truncated or replaced)"
    if hash_file and (digest := sha256_file(path)) != want.get("sha256"):
        return f"{name}: sha256 {digest}, {want.get('sha256')} recorded"
    return None
