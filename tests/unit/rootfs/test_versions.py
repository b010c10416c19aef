"""Package version globs resolved against `apt-cache madison` data (pure parts).

Also: the archive index that decides cache keys and SOURCE_DATE_EPOCH is verified with the
archive keyring first. tests/data/debian-trixie-updates.InRelease is a real InRelease of
the Debian archive (signed by the 12/bookworm and 13/trixie automatic signing keys), served
here from a file:// mirror: no network, no stand-in for the verification."""

from __future__ import annotations

import email.utils
import os
import shutil
from pathlib import Path

import pytest

from composer.core.errors import ComposerError
from composer.rootfs.versions import (
    KEYRING,
    STALE_CACHE,
    IndexSignatureError,
    archive_index_digest,
    parse_madison,
    pick_version,
    release_epoch,
    resolve_pins,
    sweep_cache_temporaries,
    verify_inrelease,
)

MADISON = """\
      tmux |     3.5a-3 | http://deb.debian.org/debian trixie/main amd64 Packages
      tmux |     3.3a-3 | http://deb.debian.org/debian bookworm/main amd64 Packages
   busybox | 1:1.37.0-6 | http://deb.debian.org/debian trixie/main amd64 Packages
      tmux |     3.5a-3 | http://deb.debian.org/debian trixie/main Sources
"""


def test_parse_madison_keeps_order_and_drops_sources() -> None:
    assert parse_madison(MADISON) == {"tmux": ["3.5a-3", "3.3a-3"], "busybox": ["1:1.37.0-6"]}
    assert parse_madison("N: Unable to locate package nope\n") == {}


@pytest.mark.parametrize(
    ("glob", "want"),
    [("3.*", "3.5a-3"), ("3.3*", "3.3a-3"), ("3.5a-3", "3.5a-3"), ("3.?a-3", "3.5a-3"),
     ("4.*", None), ("1:1.37.*", None)],
)  # fmt: skip
def test_pick_version_first_match_is_the_highest(glob: str, want: str | None) -> None:
    assert pick_version(glob, ["3.5a-3", "3.3a-3"]) == want


def test_resolve_pins_names_every_problem() -> None:
    available = parse_madison(MADISON)
    assert resolve_pins([("tmux", "3.3*"), ("busybox", "1:1.37.*")], available, "trixie") == {
        "tmux": "3.3a-3",
        "busybox": "1:1.37.0-6",
    }
    with pytest.raises(ComposerError) as info:
        resolve_pins([("tmux", "9.*"), ("nope", "1.*")], available, "trixie")
    msg = str(info.value)
    assert "tmux: no version matches '9.*'" in msg and "3.5a-3" in msg
    assert "nope: not in trixie" in msg


# --- archive signature ------------------------------------------------------------

DATA = Path(__file__).resolve().parents[2] / "data/debian-trixie-updates.InRelease"
SUITE = "trixie-updates"
pytestmark = pytest.mark.skipif(
    shutil.which("gpgv") is None or not Path(KEYRING).is_file(),
    reason="needs gpgv and debian-archive-keyring",
)


def mirror(tmp_path: Path, data: bytes) -> str:
    (tmp_path / "dists" / SUITE).mkdir(parents=True)
    (tmp_path / "dists" / SUITE / "InRelease").write_bytes(data)
    return f"file://{tmp_path}"


def _date(text: str) -> int:
    line = next(ln for ln in text.splitlines() if ln.startswith("Date:"))
    return int(email.utils.parsedate_to_datetime(line[5:].strip()).timestamp())


def test_real_inrelease_verifies(tmp_path: Path) -> None:
    signed = verify_inrelease(DATA.read_bytes(), "InRelease").decode()
    assert signed.startswith("Origin: Debian") and "BEGIN PGP" not in signed
    url = mirror(tmp_path, DATA.read_bytes())
    assert release_epoch(url, SUITE) == _date(signed)
    digest, why = archive_index_digest([f"{url}/dists/{SUITE}/InRelease"])
    assert digest is not None and why == ""


def test_tampered_inrelease_is_refused(tmp_path: Path) -> None:
    text = DATA.read_text()
    tampered = text.replace("Date: ", "Date: Mon, 01 Jan 2035 00:00:00 UTC\nX-Old-Date: ", 1)
    assert tampered != text
    with pytest.raises(IndexSignatureError, match="does not verify"):
        verify_inrelease(tampered.encode(), "InRelease")
    url = mirror(tmp_path, tampered.encode())
    with pytest.raises(IndexSignatureError):
        archive_index_digest([f"{url}/dists/{SUITE}/InRelease"])
    with pytest.raises(IndexSignatureError):
        release_epoch(url, SUITE)


def test_text_outside_the_signature_is_refused(tmp_path: Path) -> None:
    """gpgv accepts unsigned text around a clear-signed message; a Date: there must never
    become SOURCE_DATE_EPOCH, so such a file is refused (as apt refuses it)."""
    forged = b"Date: Mon, 01 Jan 2035 00:00:00 UTC\n\n" + DATA.read_bytes()
    with pytest.raises(IndexSignatureError, match="text outside"):
        release_epoch(mirror(tmp_path, forged), SUITE)
    with pytest.raises(IndexSignatureError, match="text outside"):
        verify_inrelease(DATA.read_bytes() + b"\nDate: Mon, 01 Jan 2035 00:00:00 UTC\n", "x")


def test_unsigned_index_is_refused() -> None:
    with pytest.raises(IndexSignatureError):
        verify_inrelease(b"Origin: Debian\nDate: Mon, 01 Jan 2035 00:00:00 UTC\n", "InRelease")


def test_package_caches_a_killed_apt_left_are_swept_and_one_being_written_stays(
    tmp_path: Path,
) -> None:
    """apt writes pkgcache.bin.XXXXXX and renames it in; a kill in between leaves the 43 MB
    file. An old one goes, a fresh one (another build's apt writing it now) and the cache
    itself stay."""
    now = 1_000_000.0
    for name, age in (("pkgcache.bin", 2 * STALE_CACHE), ("pkgcache.bin.5jvtMq", 2 * STALE_CACHE),
                      ("pkgcache.bin.Nf4PrU", 1.0)):  # fmt: skip
        (tmp_path / name).write_bytes(b"c")
        os.utime(tmp_path / name, (now - age, now - age))
    sweep_cache_temporaries(tmp_path, now=now)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkgcache.bin", "pkgcache.bin.Nf4PrU"]
