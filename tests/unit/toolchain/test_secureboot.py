"""Secure Boot keys, the varstore the composer ships, and how a refusal shows in the verdict."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509

from composer.image.varstore import KEY_NAMES, BootOption, make_varstore, read_varstore
from composer.judge.serial import scan_text
from composer.judge.verdict import Expectations, judge
from composer.toolchain.secureboot import (
    SecureBootKeyError,
    ensure_keys,
    generate_keys,
    load_keys,
)

OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
# What OVMF 2022.11 (Debian 12) printed when the varstore's entry pointed at a UKI signed by a
# key not in db (the tamper integration test).
OVMF_REFUSAL = (
    'BdsDxe: failed to load Boot0000 "Debian GNU/Linux 13 (trixie) (6.12.107+deb13-amd64)" from '
    "HD(1,GPT,AB120934-AC64-511E-8695-05568D1D9EF3,0x800,0x80000)/\\EFI\\Linux\\"
    "debian-6.12.107+deb13-amd64.efi: Access Denied"
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("k") / "sb"
    generate_keys(directory, "test")
    return directory


def test_generated_keys_are_private_and_complete(keys: Path) -> None:
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in KEY_NAMES:
        for suffix in (".key", ".crt"):
            f = keys / f"{name}{suffix}"
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        cert = x509.load_pem_x509_certificate((keys / f"{name}.crt").read_bytes())
        assert cert.subject.rfc4514_string() == f"CN=test {name}"
        assert b"PRIVATE KEY" in (keys / f"{name}.key").read_bytes()
    ks = load_keys(keys)
    assert len(ks.cert_sha256("db")) == 64 and ks.cert_sha256("db") != ks.cert_sha256("PK")


def test_generate_refuses_to_overwrite(keys: Path) -> None:
    before = (keys / "db.key").read_bytes()
    with pytest.raises(SecureBootKeyError, match="refusing to overwrite"):
        generate_keys(keys)
    assert (keys / "db.key").read_bytes() == before


def test_partial_key_directory_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "db.key").write_text("x")
    with pytest.raises(SecureBootKeyError, match="missing PK.key"):
        ensure_keys(tmp_path)


def test_a_linked_key_file_is_refused(keys: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    shutil.copytree(keys, mine)
    (mine / "db.key").unlink()
    (mine / "db.key").symlink_to(keys / "db.key")  # somebody else's db key
    with pytest.raises(SecureBootKeyError, match=r"db.key: symbolic links; .* regular files"):
        load_keys(mine)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_others_may_read_or_write_is_refused(keys: Path, tmp_path: Path, mode: int) -> None:
    """As for the PCR signing key: a private key that group or others may read is a leak on a
    shared build host, and one they may write could be swapped for theirs."""
    mine = tmp_path / "mine"
    shutil.copytree(keys, mine)
    load_keys(mine)  # copied as generated: 0600
    (mine / "KEK.key").chmod(mode)
    with pytest.raises(SecureBootKeyError) as info:
        load_keys(mine)
    message = str(info.value)
    assert f"KEK.key: mode {mode:04o}" in message and f"chmod 600 {mine / 'KEK.key'}" in message
    assert "PK.key" not in message and "db.key" not in message


def test_ensure_generates_only_when_absent(tmp_path: Path) -> None:
    first, made = ensure_keys(tmp_path / "new")
    assert made
    again, made_again = ensure_keys(tmp_path / "new")
    assert not made_again and again.owner == first.owner


@pytest.mark.skipif(not OVMF_VARS.exists(), reason="ovmf not installed")
def test_varstore_enrolls_keys_and_boot_entry(keys: Path, tmp_path: Path) -> None:
    option = BootOption(
        "Debian GNU/Linux 13 (trixie) (6.12.1)",
        "EFI/Linux/debian-6.12.1.efi",
        1,
        "0b8d6a2e-0d3c-4c55-9d1e-6f8a4dbe6c11",
        1024 * 1024,
        256 * 1024 * 1024,
    )
    dest = tmp_path / "x.vars.fd"
    make_varstore(OVMF_VARS, dest, keys=load_keys(keys), boot_options=[option])
    vs = read_varstore(dest)
    assert vs.secure_boot_enable and vs.enrolled == {"PK": 1, "KEK": 1, "db": 1}
    assert vs.boot_order == ["Boot0000"]
    entry = vs.boot_entries["Boot0000"]
    assert entry["title"] == option.title
    assert entry["device_path"].endswith("FilePath(\\EFI\\Linux\\debian-6.12.1.efi)")
    hd = option.device_path()[0]
    assert str(hd.get_partuuid()).lower() == option.partition_uuid  # HD(): GPT, LBA units
    assert dest.stat().st_size == OVMF_VARS.stat().st_size
    assert not list(tmp_path.glob(".*tmp"))
    plain = tmp_path / "plain.vars.fd"
    make_varstore(OVMF_VARS, plain, boot_options=[option])
    vs = read_varstore(plain)
    assert not vs.secure_boot_enable and vs.enrolled == {} and vs.boot_order == ["Boot0000"]


@pytest.mark.parametrize(
    "line",
    [
        OVMF_REFUSAL,
        # systemd-boot's "Error loading %ls: %m" with LoadImage's status, in its spelling
        "Error loading \\EFI\\Linux\\debian-6.12.efi: Access denied",
        "Error loading \\EFI\\Linux\\debian-6.12.efi: Security violation",
    ],
)
def test_firmware_refusal_fails_the_boot_naming_secure_boot(line: str) -> None:
    events = scan_text(f"BdsDxe: loading Boot0000\r\n{line}\r\n", t=9.0)
    assert [e.name for e in events if e.kind == "fatal"] == ["sb-violation"]
    verdict = judge(None, events, Expectations(ROOT_X86_64, secure_boot=True))
    failed = {c.name: c for c in verdict.checks if not c.passed}
    assert not verdict.passed and "secure-boot" in failed
    assert line[-20:] in failed["secure-boot"].detail


def test_grub_is_a_loader_milestone() -> None:
    events = scan_text("GNU GRUB  version 2.12-9+deb13u2\r\n")
    assert [(e.kind, e.name) for e in events] == [("milestone", "loader")]
