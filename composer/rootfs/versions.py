"""Package version globs ("1.36.*") resolved against the archive, then pinned name=version;
and the archive's index (InRelease), verified with the archive keyring (gpgv) before its
``Date:`` and digest decide SOURCE_DATE_EPOCH and the cache keys.

The host's apt reads the target suite's package index into a private state directory (kept
in the cache, so later builds only fetch what changed); `apt-cache madison` lists the
versions the archive has, highest first, and the first one the glob matches is pinned.
"""

from __future__ import annotations

import contextlib
import email.utils
import fnmatch
import functools
import hashlib
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from composer.core import locks, tools
from composer.core.errors import ComposerError, KeyedProblems, Problem, ToolError
from composer.spec.arch import Arch

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# apt writes a new package cache as pkgcache.bin.XXXXXX (about 43 MB for trixie) and renames it
# in within a second; one this old was left by an apt that was killed meanwhile
STALE_CACHE = 600.0


def parse_madison(text: str) -> dict[str, list[str]]:
    """`apt-cache madison` output -> package -> versions in the order listed (highest first)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 3 and fields[0] and fields[1] and "Sources" not in fields[2]:
            versions = found.setdefault(fields[0], [])
            if fields[1] not in versions:
                versions.append(fields[1])
    return found


def pick_version(glob: str, versions: Sequence[str]) -> str | None:
    """The first (highest) version the glob matches, or None. Exact versions match as is."""
    for v in versions:
        if v == glob or fnmatch.fnmatchcase(v, glob):
            return v
    return None


def match_pins(
    pins: Sequence[tuple[str, str]],
    available: dict[str, list[str]],
    suite: str,
    keys: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[Problem]]:
    """(name -> version for every (name, glob) the archive satisfies, a problem at its
    blueprint key for every other; ``keys``: name -> packages[i])."""
    out: dict[str, str] = {}
    problems = []
    for name, glob in pins:
        key = (keys or {}).get(name, "packages")
        versions = available.get(name)
        if not versions:
            problems.append(Problem(f"{key}.name", f"{name}: not in {suite}"))
            continue
        v = pick_version(glob, versions)
        if v is None:
            problems.append(Problem(f"{key}.version", f"{name}: no version matches {glob!r}; "
                                    f"{suite} has {', '.join(versions)}"))  # fmt: skip
        else:
            out[name] = v
    return out, problems


def resolve_pins(
    pins: Sequence[tuple[str, str]],
    available: dict[str, list[str]],
    suite: str,
    keys: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """name -> version for every (name, glob); KeyedProblems for what the archive lacks."""
    out, problems = match_pins(pins, available, suite, keys)
    if problems:
        raise KeyedProblems(problems)
    return out


def _apt_options(state: Path, arch: Arch) -> list[str]:
    """apt's options for the private index in ``state``. The host's apt.conf.d still counts (a
    proxy), but its package cache is always kept: a host that disables it (Debian's container
    images: `Dir::Cache::pkgcache ""`) makes every apt command build it again from the lists,
    0.5 s each for trixie's (a cold build runs about ten on its critical path)."""
    return [
        f"-oDir::State={state}/lists-state",
        f"-oDir::State::Lists={state}/lists",
        f"-oDir::State::status={state}/status",
        f"-oDir::Cache={state}/cache",
        "-oDir::Cache::pkgcache=pkgcache.bin",  # in Dir::Cache; apt renames a new one in
        "-oDir::Cache::srcpkgcache=",  # not kept: the status is empty, and it is 43 MB more
        f"-oDir::Etc::SourceList={state}/sources.list",
        "-oDir::Etc::SourceParts=/nonexistent",
        "-oDir::Etc::Preferences=/nonexistent",
        "-oDir::Etc::PreferencesParts=/nonexistent",
        f"-oAPT::Architecture={arch.debian}",
        f"-oAPT::Architectures={arch.debian}",
        "-oAcquire::Languages=none",
        "-oAcquire::Retries=3",
    ]


def sweep_cache_temporaries(cache: Path, now: float | None = None) -> None:
    """Remove the package caches killed apt commands left half-written (see STALE_CACHE); one
    being written now by another build's apt is younger, and stays."""
    limit = (time.time() if now is None else now) - STALE_CACHE
    for path in cache.glob("pkgcache.bin.??????"):
        with contextlib.suppress(FileNotFoundError):
            if not path.is_symlink() and path.stat().st_mtime < limit:
                path.unlink()


@contextlib.contextmanager
def index_locked(state: Path) -> Iterator[None]:
    """One command at a time reads or updates the shared index state directory ``state``:
    apt's own lock makes a second, concurrent `apt-get update` fail instead of waiting."""
    state.mkdir(parents=True, exist_ok=True)
    with locks.held(state / "dps-composer.lock"):
        yield


def archive_versions(
    names: Sequence[str],
    *,
    suite: str,
    mirror: str,
    arch: Arch,
    state: Path,
    lists_to: Path | None = None,
) -> dict[str, list[str]]:
    """The versions of ``names`` the archive's suite has (fetches its index into ``state``).
    ``lists_to``: a directory that gets a copy of the index just fetched (apt's list files,
    taken under the lock: no other build's update can change them meanwhile)."""
    with index_locked(state):
        for sub in ("lists/partial", "lists-state", "cache/archives/partial"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        if not (state / "status").exists():  # empty; never touched again: apt's cache keys on it
            (state / "status").touch()
        (state / "sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror} {suite} main\n")
        opts = _apt_options(state, arch)
        sweep_cache_temporaries(state / "cache")
        # as mmdebstrap's own update: a warning (a source apt could not use) fails it too
        tools.run(["apt-get", *opts, "-q", "--error-on=any", "update"])
        if lists_to is not None:
            lists_to.mkdir(parents=True, exist_ok=True)
            for path in (state / "lists").iterdir():
                if path.is_file() and not path.is_symlink() and path.name != "lock":
                    shutil.copyfile(path, lists_to / path.name)
        return parse_madison(tools.output(["apt-cache", *opts, "madison", *names]))


def resolve(
    pins: Sequence[tuple[str, str]],
    *,
    suite: str,
    mirror: str,
    arch: Arch,
    cache: Path,
    keys: Mapping[str, str] | None = None,
) -> dict[str, str]:
    if not pins:
        return {}
    state = cache / "apt-index" / f"{suite}-{arch.debian}"
    available = archive_versions(
        [n for n, _ in pins], suite=suite, mirror=mirror, arch=arch, state=state
    )
    return resolve_pins(pins, available, suite, keys)


def _fetch(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http/file only)
        data: bytes = resp.read()
        return data


class IndexSignatureError(ComposerError):
    """The archive's InRelease is not signed by a key of the archive keyring."""

    exit_code = 3


def verify_inrelease(data: bytes, url: str, keyring: str = KEYRING) -> bytes:
    """The signed part of an InRelease file, once gpgv verified its signature with the
    archive keyring. Text around the clear-signed message is not covered by the signature,
    so, as apt does, a file with any is refused."""
    body = data.strip()
    if not (
        body.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
        and body.endswith(b"-----END PGP SIGNATURE-----")
    ):
        raise IndexSignatureError(f"{url}: not a clear-signed InRelease (or text outside it)")
    with tempfile.TemporaryDirectory(prefix="inrelease-") as tmp:
        src, signed = Path(tmp) / "InRelease", Path(tmp) / "signed"
        src.write_bytes(data)
        try:
            tools.run(["gpgv", "--keyring", keyring, "--output", signed, "--", src])
        except ToolError as exc:
            raise IndexSignatureError(
                f"{url}: the signature does not verify with {keyring}; refusing to use this "
                f"archive index\n{exc.stderr_tail}"
            ) from None
        return signed.read_bytes()


@functools.cache
def _index_file(url: str) -> bytes:
    """Once per process: a build asks for the same index for several stages. An apt
    InRelease is returned only as far as its signature covers it."""
    data = _fetch(url)
    if url.endswith("/InRelease"):
        return verify_inrelease(data, url)
    return data


def release_epoch(mirror: str, suite: str) -> int | None:
    """The ``Date:`` of the suite's (verified) InRelease as a Unix time (None if it cannot
    be read)."""
    try:
        text = _index_file(f"{mirror.rstrip('/')}/dists/{suite}/InRelease").decode(errors="replace")
    except (OSError, urllib.error.URLError, ValueError):
        return None
    for line in text.splitlines():
        if line.startswith("Date:"):
            try:
                return int(email.utils.parsedate_to_datetime(line[5:].strip()).timestamp())
            except (TypeError, ValueError):
                return None
    return None


def archive_index_digest(urls: Sequence[str]) -> tuple[str | None, str]:
    """(digest of the index files, reason when they cannot be read: then nothing is cached).
    An InRelease whose signature does not verify stops the build (IndexSignatureError)."""
    if not urls:
        return None, "the package sources have no index the composer can read"
    h = hashlib.sha256()
    for url in urls:
        try:
            h.update(url.encode() + b"\0" + hashlib.sha256(_index_file(url)).digest())
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return None, f"cannot read {url}: {exc}"
    return h.hexdigest(), ""
