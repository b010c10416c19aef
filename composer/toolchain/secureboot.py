"""Secure Boot keys (PK, KEK, db: X.509 certificate + private key each) and PE signing.

Private keys stay in their directory (mode 0700, files 0600): only their paths reach a command
line or the build log, and nothing of them goes into an image or a varstore (which get the
certificates only).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from composer.core import tools
from composer.core.errors import ComposerError
from composer.core.files import atomic_path, atomic_write, exposed_private_file, fsync_dir
from composer.core.workdir import made_once
from composer.image.varstore import KEY_NAMES

OWNER_FILE = "owner.guid"  # the signature owner GUID recorded with each enrolled certificate
VALID_DAYS = 3650


class SecureBootKeyError(ComposerError):
    """A key directory that cannot be used (missing, partial, unreadable, not private)."""

    exit_code = 2


@dataclass(frozen=True)
class KeySet:
    directory: Path
    owner: str  # GUID

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def files(self) -> list[Path]:
        return [p for n in KEY_NAMES for p in (self.key(n), self.cert(n))]

    def cert_sha256(self, name: str) -> str:
        """SHA-256 of the DER certificate (its fingerprint)."""
        cert = x509.load_pem_x509_certificate(self.cert(name).read_bytes())
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _self_signed(common_name: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def generate_keys(directory: Path, common_name: str = "dps-composer") -> KeySet:
    """New PK, KEK and db in ``directory``: created 0700 when missing; an existing directory
    is used only if it is ours and nobody else can read or write it (its mode is never
    changed), and no key file in it is overwritten."""
    private_directory(directory)
    taken = [p.name for n in KEY_NAMES for p in (directory / f"{n}.key", directory / f"{n}.crt")]
    existing = [n for n in [*taken, OWNER_FILE] if (directory / n).exists()]
    if existing:
        raise SecureBootKeyError(
            f"{directory}: already holds {', '.join(existing)}; "
            "refusing to overwrite keys (use another directory or remove them)"
        )
    owner = str(uuid.uuid4())
    for name in KEY_NAMES:
        key_pem, cert_pem = _self_signed(f"{common_name} {name}")
        write_key_file(directory / f"{name}.key", key_pem, 0o600)
        write_key_file(directory / f"{name}.crt", cert_pem, 0o600)
    write_key_file(directory / OWNER_FILE, (owner + "\n").encode(), 0o600)
    return KeySet(directory, owner)


def write_key_file(path: Path, data: bytes, mode: int) -> None:
    """A new key file, whole or not at all: written to an O_EXCL temporary made ``mode``
    before a byte is written (a private key is never readable by others, not even briefly),
    synced, then linked to ``path`` (never replacing anything there) and the directory
    synced: a run killed at any point leaves no half key under a key's name."""
    atomic_write(path, data, mode, replace=False)


def private_directory(directory: Path) -> None:
    """Make ``directory`` (0700), or check that the existing one is private to us."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
        fsync_dir(directory.parent)
        return
    except FileExistsError:
        pass
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise SecureBootKeyError(f"{directory}: exists and is not a directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SecureBootKeyError(
            f"{directory}: mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}: private "
            "keys need a directory only you can use; give a new directory (it is made 0700) "
            f"or make this one yours with mode 0700 (chmod 700 {directory})"
        )


def load_keys(directory: Path) -> KeySet:
    """The key set in ``directory``; names every missing file (a missing directory too)."""
    if not directory.is_dir():
        raise SecureBootKeyError(
            f"{directory}: no such key directory (make one with: dps-composer keys generate "
            f"{directory}, or leave [secureboot] keys out for the default keys)"
        )
    missing = [
        p.name
        for n in KEY_NAMES
        for p in (directory / f"{n}.key", directory / f"{n}.crt")
        if not p.is_file()
    ]
    if not (directory / OWNER_FILE).is_file():
        missing.append(OWNER_FILE)
    if missing:
        raise SecureBootKeyError(
            f"{directory}: not a complete Secure Boot key directory, missing {', '.join(missing)} "
            "(make one with: dps-composer keys generate DIR)"
        )
    linked = [p.name for p in [*KeySet(directory, "").files(), directory / OWNER_FILE]
              if p.is_symlink()]  # fmt: skip
    if linked:
        raise SecureBootKeyError(
            f"{directory}: {', '.join(linked)}: symbolic links; the keys must be regular files "
            "in the key directory itself (a link could lead to somebody else's key): copy them "
            "there"
        )
    exposed = [
        (p, why) for n in KEY_NAMES if (why := exposed_private_file(p := directory / f"{n}.key"))
    ]
    if exposed:
        raise SecureBootKeyError(
            f"{directory}: {'; '.join(f'{p.name}: {why}' for p, why in exposed)}: a private key "
            "must be a regular file only you can read "
            f"(chmod 600 {' '.join(str(p) for p, _ in exposed)})"
        )
    try:
        owner = str(uuid.UUID((directory / OWNER_FILE).read_text().strip()))
    except ValueError:
        raise SecureBootKeyError(f"{directory / OWNER_FILE}: not a GUID") from None
    return KeySet(directory, owner)


def ensure_keys(directory: Path) -> tuple[KeySet, bool]:
    """The default key directory: loaded, or generated when it does not exist (or is empty).
    (keys, generated)

    The keys are made whole in a fresh 0700 directory beside it and renamed into place, so
    two builds that share a cache never see half a key set; the one that loses the race
    uses the winner's. A key directory a blueprint names is never generated: see
    :func:`load_keys`."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        return load_keys(directory), False
    made = made_once(directory, generate_keys)
    return load_keys(directory), made


def sign_pe(path: Path, keys: KeySet) -> None:
    """Sign a PE binary in place with the db key (sbsign), atomically."""
    with atomic_path(path, path.stat().st_mode & 0o7777) as tmp:
        argv: list[str | os.PathLike[str]] = ["sbsign", "--key", keys.key("db")]
        argv += ["--cert", keys.cert("db"), "--output", tmp, "--", path]
        tools.run(argv)


def verify_pe(path: Path, cert: Path) -> bool:
    """Whether ``path`` carries a valid signature by ``cert`` (sbverify)."""
    try:
        tools.run(["sbverify", "--cert", cert, path])
    except ComposerError:
        return False
    return True
