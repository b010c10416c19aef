"""The PCR policy signing key pair: the private key signs the UKI's expected PCR 11 values
(``.pcrsig``, made by ``systemd-measure sign`` through ukify), the public key goes into the UKI
as ``.pcrpkey`` and is what a TPM2-sealed secret is bound to.

File names follow systemd's (systemd-cryptenroll(1) ``--tpm2-public-key=``, ukify(1)
``--pcr-private-key=``): ``tpm2-pcr-private-key.pem`` (PKCS#8, mode 0600) and
``tpm2-pcr-public-key.pem`` (SubjectPublicKeyInfo). RSA 2048, the key type every TPM 2.0
verifies (TPM2_VerifySignature with TPM_ALG_RSASSA); the private key never leaves its directory:
only its path reaches the chrooted ukify.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from composer.core.errors import ComposerError
from composer.core.files import exposed_private_file
from composer.core.workdir import made_once
from composer.measure.pcrsig import fingerprint_of
from composer.toolchain.secureboot import write_key_file

PRIVATE_FILE = "tpm2-pcr-private-key.pem"
PUBLIC_FILE = "tpm2-pcr-public-key.pem"
KEY_BITS = 2048


class PcrKeyError(ComposerError):
    """A PCR signing key that cannot be used (missing, mismatched, readable by others)."""

    exit_code = 2


@dataclass(frozen=True)
class PcrKey:
    directory: Path

    @property
    def private(self) -> Path:
        return self.directory / PRIVATE_FILE

    @property
    def public(self) -> Path:
        return self.directory / PUBLIC_FILE

    @property
    def fingerprint(self) -> str:
        """The ``pkfp`` systemd-measure writes into ``.pcrsig`` (composer/measure/pcrsig.py)."""
        return fingerprint_of(self.public.read_bytes())


def generate_pcr_key(directory: Path) -> PcrKey:
    """A new key pair in ``directory`` (which must exist and be private: the Secure Boot key
    directory's rules, composer/toolchain/secureboot.py); never overwrites a key."""
    key = PcrKey(directory)
    taken = [p.name for p in (key.private, key.public) if p.exists() or p.is_symlink()]
    if taken:
        raise PcrKeyError(
            f"{directory}: already holds {', '.join(taken)}; refusing to overwrite a PCR "
            "signing key (use another directory or remove it)"
        )
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    write_key_file(
        key.private,
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_key_file(key.public, public, 0o644)
    return key


def load_pcr_key(directory: Path, key_name: str = "measured.keys") -> PcrKey:
    """The key pair in ``directory``, checked: both files there, the private key a regular
    file only its owner can read, the public key the private key's. ``key_name`` is the
    blueprint key (or option) that named the directory, for the error."""
    how = f"(make one with: dps-composer keys generate --pcr-only {directory})"
    if not directory.is_dir():
        raise PcrKeyError(f"{key_name}: {directory}: no such key directory {how}")
    key = PcrKey(directory)
    missing = [p.name for p in (key.private, key.public) if not p.is_file()]
    if missing:
        raise PcrKeyError(
            f"{key_name}: {directory}: no PCR signing key pair, missing {', '.join(missing)} {how}"
        )
    exposed = exposed_private_file(key.private)
    if exposed:
        raise PcrKeyError(
            f"{key_name}: {key.private}: {exposed}: a private key must be a regular file only "
            f"you can read (chmod 600 {key.private})"
        )
    _check_pair(key, key_name)
    return key


def _check_pair(key: PcrKey, key_name: str) -> None:
    try:
        private = serialization.load_pem_private_key(key.private.read_bytes(), password=None)
        public = serialization.load_pem_public_key(key.public.read_bytes())
    except (ValueError, TypeError) as exc:
        raise PcrKeyError(f"{key_name}: {key.directory}: not a PEM key pair: {exc}") from None
    if not isinstance(private, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
        raise PcrKeyError(f"{key_name}: {key.directory}: the PCR signing key must be RSA")
    if private.public_key().public_numbers() != public.public_numbers():
        raise PcrKeyError(f"{key_name}: {key.public}: is not the public key of {key.private.name}")


def ensure_pcr_key(directory: Path) -> tuple[PcrKey, bool]:
    """The default key pair (in the cache): loaded, or made the first time. (key, generated)

    Made whole in a private directory beside it and renamed into place, so two builds that
    share a cache never see half a pair; the one that loses the race uses the winner's."""
    what = "the default PCR key directory"
    if directory.exists():
        return load_pcr_key(directory, what), False
    made = made_once(directory, _generate_in_new_directory)
    return load_pcr_key(directory, what), made


def _generate_in_new_directory(directory: Path) -> None:
    os.mkdir(directory, 0o700)
    generate_pcr_key(directory)
