"""Secrets on the build host: the stage cache's own secret key, what it blinds, and the
passwords a build generates.

Cache keys are hashes of what a stage reads; a blueprint's password (plain text or a crypt
hash) must not be recoverable from them by guessing (a bare SHA-256 of a weak password
is). So every secret goes into a key as ``HMAC-SHA256(cache secret, value)``: stable for
one cache (a rebuild still hits), worthless without the secret, which is 32 random bytes
in ``CACHE/secret.key``, made once with mode 0600.

A user with ``generate_password = true`` (a dps-composer extension of
``[[customizations.user]]``) gets a password derived from the same secret, the image name
and the user name: every build with one cache sets the same password (and, with a salt
derived the same way, the same yescrypt hash: the image stays bit-for-bit reproducible),
no two build hosts share it, and no blueprint or log holds it. ``dps-composer build``
writes it to ``OUTPUT/NAME.USER.password`` (mode 0600).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import hmac
import os
import stat
import string
import tempfile
from pathlib import Path

from composer.core.errors import ComposerError
from composer.core.files import atomic_write

SECRET_FILE = "secret.key"
SECRET_BYTES = 32
PASSWORD_LENGTH = 20  # from 62 symbols: about 119 bits
_ALPHABET = string.ascii_letters + string.digits


class SecretError(ComposerError):
    """The cache's secret key cannot be read or made safely."""

    exit_code = 3


def cache_secret(cache: Path) -> bytes:
    """The cache's secret key, made on first use: written whole under a fresh name (0600)
    and linked into place, so a build racing this one reads either nothing or all of it
    (and then the winner's)."""
    path = cache / SECRET_FILE
    cache.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(path):
        fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=cache)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(SECRET_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SecretError(f"{path}: cannot read the cache's secret key: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = fh.read(SECRET_BYTES + 1)
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.geteuid():
        raise SecretError(f"{path}: the cache's secret key must be a file only you can read (0600)")
    if len(data) != SECRET_BYTES:
        raise SecretError(f"{path}: not a secret key of {SECRET_BYTES} bytes (remove it)")
    return data


def blind(secret: bytes, value: str) -> str:
    """``value`` as it may appear in a cache key: an HMAC under the cache's secret."""
    return "hmac-sha256:" + hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


def generated_password(secret: bytes, image: str, user: str) -> str:
    """The password a build with this cache gives ``user`` of image ``image``."""
    digest = hmac.new(secret, f"password\0{image}\0{user}".encode(), hashlib.sha512).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[: PASSWORD_LENGTH * 2])[
        :PASSWORD_LENGTH
    ]


def generated_hash(secret: bytes, image: str, user: str) -> str:
    """The yescrypt hash of :func:`generated_password`, salted from the same secret."""
    salt = hmac.new(secret, f"salt\0{image}\0{user}".encode(), hashlib.sha256).digest()[:16]
    return crypt_hash(generated_password(secret, image, user), salt)


def _libcrypt() -> ctypes.CDLL:
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


def crypt(password: str, setting: str) -> str:
    """crypt(3) (libxcrypt) of ``password`` with ``setting`` (``$y$…$salt``, or a whole
    hash: then equal to it exactly when the password is right)."""
    hashed = _libcrypt().crypt(password.encode(), setting.encode())
    if not hashed or hashed.startswith(b"*"):
        raise SecretError("libcrypt could not hash the password (is libcrypt1 installed?)")
    return str(hashed.decode())


def crypt_hash(password: str, salt: bytes) -> str:
    """The yescrypt (``$y$``) hash of ``password`` with the salt bytes given."""
    setting = _libcrypt().crypt_gensalt(b"$y$", 0, salt, len(salt))
    if not setting:
        raise SecretError("libcrypt could not make a yescrypt salt (is libcrypt1 installed?)")
    return crypt(password, setting.decode())


def password_file(output_dir: Path, image: str, user: str) -> Path:
    return output_dir / f"{image}.{user}.password"


def write_password_file(output_dir: Path, secret: bytes, image: str, user: str) -> Path:
    """The generated password of ``user``, for the image's owner only (0600)."""
    path = password_file(output_dir, image, user)
    atomic_write(path, generated_password(secret, image, user) + "\n", mode=0o600)
    return path
