"""The PCR policy signing key pair: made private, loaded with every problem named, never
overwritten; `keys generate` makes it beside the Secure Boot keys."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from composer.measure.pcrsig import fingerprint_of
from composer.toolchain.pcrkey import (
    PRIVATE_FILE,
    PUBLIC_FILE,
    PcrKeyError,
    ensure_pcr_key,
    generate_pcr_key,
    load_pcr_key,
)

from ..cli_run import cli


def private_dir(tmp_path: Path, name: str = "k") -> Path:
    d = tmp_path / name
    d.mkdir(mode=0o700)
    return d


def test_a_new_pair_is_private_and_matches(tmp_path: Path) -> None:
    key = generate_pcr_key(private_dir(tmp_path))
    assert stat.S_IMODE(key.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.public.stat().st_mode) == 0o644
    loaded = load_pcr_key(key.directory)
    assert loaded.fingerprint == fingerprint_of(key.public.read_bytes())
    private = serialization.load_pem_private_key(key.private.read_bytes(), None)
    assert private.key_size == 2048  # type: ignore[union-attr]


def test_an_existing_pair_is_never_overwritten(tmp_path: Path) -> None:
    key = generate_pcr_key(private_dir(tmp_path))
    before = key.private.read_bytes()
    with pytest.raises(PcrKeyError, match="refusing to overwrite"):
        generate_pcr_key(key.directory)
    assert key.private.read_bytes() == before


def test_a_missing_directory_names_the_key_and_the_remedy(tmp_path: Path) -> None:
    with pytest.raises(PcrKeyError) as info:
        load_pcr_key(tmp_path / "nope")
    message = str(info.value)
    assert "measured.keys" in message and str(tmp_path / "nope") in message
    assert "keys generate --pcr-only" in message and info.value.exit_code == 2


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    key = generate_pcr_key(private_dir(tmp_path))
    key.public.unlink()
    with pytest.raises(PcrKeyError, match=f"missing {PUBLIC_FILE}"):
        load_pcr_key(key.directory)


def test_a_private_key_others_can_read_is_refused(tmp_path: Path) -> None:
    key = generate_pcr_key(private_dir(tmp_path))
    key.private.chmod(0o644)
    with pytest.raises(PcrKeyError) as info:
        load_pcr_key(key.directory)
    assert str(key.private) in str(info.value) and "chmod 600" in str(info.value)


def test_a_linked_private_key_is_refused(tmp_path: Path) -> None:
    key = generate_pcr_key(private_dir(tmp_path))
    elsewhere = tmp_path / "elsewhere.pem"
    os.rename(key.private, elsewhere)
    key.private.symlink_to(elsewhere)
    with pytest.raises(PcrKeyError, match="regular file"):
        load_pcr_key(key.directory)


def test_a_public_key_of_another_pair_is_refused(tmp_path: Path) -> None:
    one = generate_pcr_key(private_dir(tmp_path, "one"))
    two = generate_pcr_key(private_dir(tmp_path, "two"))
    one.public.write_bytes(two.public.read_bytes())
    with pytest.raises(PcrKeyError, match="is not the public key of"):
        load_pcr_key(one.directory)


def test_garbage_is_not_a_key(tmp_path: Path) -> None:
    d = private_dir(tmp_path)
    (d / PUBLIC_FILE).write_text("nope\n")
    fd = os.open(d / PRIVATE_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"nope\n")
    os.close(fd)
    with pytest.raises(PcrKeyError, match="not a PEM key pair"):
        load_pcr_key(d)


def test_the_default_pair_is_made_once(tmp_path: Path) -> None:
    first, made = ensure_pcr_key(tmp_path / "cache" / "keys" / "pcr")
    again, made_again = ensure_pcr_key(first.directory)
    assert made and not made_again and first.fingerprint == again.fingerprint
    assert stat.S_IMODE(first.directory.stat().st_mode) == 0o700
    assert [p.name for p in first.directory.parent.iterdir()] == ["pcr"]  # nothing left over


def test_keys_generate_makes_the_pcr_pair_too(tmp_path: Path) -> None:
    done = cli("keys", "generate", tmp_path / "keys", "--json=short")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    key = load_pcr_key(tmp_path / "keys")
    assert data["pcr_public_key_sha256"] == key.fingerprint
    assert str(key.private) in data["files"] and "db.key" in " ".join(data["files"])


def test_keys_generate_pcr_only_adds_a_pair_to_secure_boot_keys(tmp_path: Path) -> None:
    assert cli("keys", "generate", tmp_path / "k").returncode == 0
    again = cli("keys", "generate", tmp_path / "k", "--pcr-only")
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    (tmp_path / "k" / PRIVATE_FILE).unlink()
    (tmp_path / "k" / PUBLIC_FILE).unlink()
    done = cli("keys", "generate", tmp_path / "k", "--pcr-only")
    assert done.returncode == 0, done.stderr
    assert load_pcr_key(tmp_path / "k").fingerprint in done.stderr + done.stdout
