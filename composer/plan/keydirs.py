"""Which signing keys a build may use: the rule for ``[secureboot] keys`` and ``[measured] keys``.

The composer runs as root on shared build hosts and a blueprint may come from anyone, so a
blueprint must not be able to sign its image with somebody else's keys (the private key stays
where it is, but the signature by it is what a firmware or a TPM policy trusts). The rule:

- A blueprint names a key directory **below its own directory** only: a relative path without
  ``..`` (and no ``~``), resolved against the blueprint file's directory, whose real path
  (every symbolic link resolved) stays inside that directory. Whoever could put the blueprint
  there could put the keys there; a blueprint cannot reach out of it.
- Key directories anywhere else are the invoker's choice, on the command line:
  ``build --keys DIR`` and ``build --pcr-keys DIR`` (as ``uki-virt build`` has them); they
  replace the blueprint's ``keys``.
- Without either, the default keys in the cache are used (made the first time).
- In the directory, private keys are regular files, not links (composer/toolchain: a link
  could lead to another team's key; a hard link to a file one cannot read is refused by the
  kernel's fs.protected_hardlinks).

Left open: whoever can write the blueprint's directory can swap a checked directory for a link
between this check and the signing; the check keeps a blueprint value from choosing the key.

mkosi resolves ``SecureBootKey=`` relative to its configuration's directory but accepts any
absolute path, ``~`` and environment variables (mkosi/config.py ``parse_path``) and follows links:
a configuration decides which key signs. Here the configuration cannot.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from composer.blueprint.model import Blueprint
from composer.core.errors import Problem

# the blueprint key and the command-line option that gives a key directory from elsewhere
OPTIONS = {"secureboot.keys": "--keys", "measured.keys": "--pcr-keys"}


def named_key_dirs(bp: Blueprint) -> list[tuple[str, str]]:
    """(blueprint key, value) for each key directory the blueprint names."""
    named = [("secureboot.keys", bp.secureboot.keys), ("measured.keys", bp.measured.keys)]
    return [(key, value) for key, value in named if value is not None and value.strip()]


def _refusal(key: str, value: str, why: str) -> Problem:
    return Problem(
        key,
        f"{value!r} {why}: a blueprint names only a key directory below its own directory "
        f'(a relative path without "..", e.g. keys = "keys"); give a key directory from '
        f"elsewhere on the command line (dps-composer build {OPTIONS[key]} DIR), or leave "
        "keys out for the default keys in the cache",
    )


def shape_problem(key: str, value: str) -> Problem | None:
    """The pure half of the rule (``plan`` reads no files): relative, no ``..``, no ``~``."""
    path = PurePath(value)
    if path.is_absolute():
        return _refusal(key, value, "is an absolute path")
    if value.startswith("~"):
        return _refusal(key, value, "is a path in a home directory")
    if ".." in path.parts:
        return _refusal(key, value, 'goes up with ".."')
    return None


def link_problem(key: str, value: str, base: Path) -> Problem | None:
    """The half that reads the file system: the key directory's real path (links resolved)
    stays inside ``base``, the blueprint's real directory. After :func:`shape_problem`."""
    real = Path(os.path.realpath(base / value))
    if real.is_relative_to(base):
        return None
    return _refusal(key, value, f"leads out of the blueprint's directory {base} (to {real})")


def shape_problems(bp: Blueprint) -> list[Problem]:
    return [p for k, v in named_key_dirs(bp) if (p := shape_problem(k, v)) is not None]


def link_problems(bp: Blueprint, blueprint_file: Path) -> list[Problem]:
    base = blueprint_file.resolve().parent
    return [p for k, v in named_key_dirs(bp) if (p := link_problem(k, v, base)) is not None]
