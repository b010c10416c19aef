"""`keys generate` killed (SIGKILL, as by the OOM killer or a lost machine) at every point
where it opens a file: what it leaves under a key's name is a whole key, and a private key is
never readable by others, not even in a temporary."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

# The child runs the real CLI with an audit hook (PEP 578) that kills the process with SIGKILL
# at the N-th file it opens in the key directory: the moment a file was made or is about to
# be written (os.open, open, os.fdopen all raise the "open" audit event).
KILLED_AT = """
import os, runpy, signal, sys
target, n, watched = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = 0
def hook(event, args):
    global seen
    if event == "open" and (isinstance(args[0], int) or str(args[0]).startswith(watched)):
        seen += 1
        if seen == n:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
sys.argv = ["dps-composer", "keys", "generate", *sys.argv[4:], target]
runpy.run_module("composer", run_name="__main__")
"""


def _generate_killed_at(directory: Path, n: int, *args: str, watched: Path | None = None) -> int:
    """Killed at the N-th file opened under ``watched`` (the key directory when not given)."""
    watched = watched or directory
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT, str(directory), str(n), str(watched), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, -9), proc.stderr
    return proc.returncode


def _check_whole(directory: Path) -> list[str]:
    """Every file under a key's name whole; every file holding a private key 0600. The
    names of the whole files."""
    whole = []
    for f in sorted(directory.iterdir()):
        data = f.read_bytes()
        if b"PRIVATE KEY" in data:
            assert stat.S_IMODE(f.lstat().st_mode) == 0o600, f
        if f.name.startswith("."):
            continue  # a temporary of the killed run: never under a key's name
        if f.suffix == ".key" or f.name == "tpm2-pcr-private-key.pem":
            serialization.load_pem_private_key(data, password=None)
        elif f.suffix == ".crt":
            x509.load_pem_x509_certificate(data)
        elif f.name == "tpm2-pcr-public-key.pem":
            serialization.load_pem_public_key(data)
        else:
            assert f.name == "owner.guid", f
            uuid.UUID(data.decode().strip())
        whole.append(f.name)
    return whole


# Each file is four opens: its O_EXCL temporary, writing it, fsyncing it, its directory (for
# the fsync after the link); the first eight cover the private key and the public key.
@pytest.mark.parametrize("n", range(1, 9))
def test_a_killed_keys_generate_leaves_no_half_key(tmp_path: Path, n: int) -> None:
    """Into an existing private directory (a new one appears whole: below)."""
    directory = tmp_path / "k"
    directory.mkdir(0o700)
    assert _generate_killed_at(directory, n, "--pcr-only") == -9
    whole = _check_whole(directory)
    assert set(whole) <= {"tpm2-pcr-private-key.pem", "tpm2-pcr-public-key.pem"}


def test_keys_generate_writes_into_a_private_directory_with_private_modes(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "k"
    assert _generate_killed_at(directory, 10**6) == 0
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in directory.iterdir()}
    assert modes.pop("tpm2-pcr-public-key.pem") == 0o644
    assert set(modes.values()) == {0o600} and len(modes) == 8
    assert not [n for n in os.listdir(directory) if n.startswith(".")]


# Nine files, each opened four times (above), in a directory made beside the new one.
@pytest.mark.parametrize("n", range(1, 40, 3))
def test_a_new_key_directory_appears_whole_or_not_at_all(tmp_path: Path, n: int) -> None:
    """Killed anywhere, a new key directory is absent or holds every key (a later build never
    finds a Secure Boot key set without its PCR key, or a PK without db); the next run sweeps
    the killed run's temporary and makes the directory whole."""
    directory = tmp_path / "k"
    assert _generate_killed_at(directory, n, watched=tmp_path) == -9
    if directory.exists():
        assert len(_check_whole(directory)) == 9
    else:
        assert _generate_killed_at(directory, 10**6) == 0
        assert len(_check_whole(directory)) == 9
        assert os.listdir(tmp_path) == ["k"], "the killed run's temporary was left"
