"""What the stage cache's keys read besides the plan: facts the build finds out while it runs
(composer/build/keys.py), each found by one stage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The facts a build finds out that keys read besides the plan (composer/build/keys.py Facts),
# and the stage that finds each out ("": known before any stage runs).
FACTS: dict[str, tuple[str, str]] = {
    "composer": ("", "the composer's own code and data (a new composer reuses nothing)"),
    "tools": ("", "the tools tree as the composer defines it (suite, packages, layout)"),
    "local_repos": ("uki-virt", "local repositories by content (the uki-virt repository)"),
    "pins": ("resolve", "the blueprint's version globs as the archive resolves them now"),
    "index": ("resolve", "the archive's index as it is now (InRelease, verified; repomd.xml)"),
    "epoch": ("resolve", "SOURCE_DATE_EPOCH of every file in the image"),
    "secureboot_keys": ("resolve", "the Secure Boot key directory by content (when signing)"),
    "pcr_key": ("resolve", "the PCR policy signing key by its public key (when signing)"),
    "secret": ("resolve", "the cache's secret key: passwords reach keys only as its HMAC"),
}


@dataclass(frozen=True)
class Facts:
    """What keys read besides the plan, found out while the build runs (FACTS)."""

    composer: str
    tools: str
    # digests of the local repositories' content; None while uki-virt, which finds them out,
    # still runs (resolve may end first: the keys that do not read them are known then)
    local_repos: tuple[str, ...] | None
    pins: Mapping[str, str]
    index: str
    epoch: int
    secureboot_keys: str | None  # digest of the key directory; None when not signing
    secret: bytes  # the cache's secret key: keys hold only HMACs under it
    pcr_key: str | None = None  # SHA-256 of the PCR policy public key; None when not signing


def unknown(facts: Facts) -> frozenset[str]:
    """The facts not found out yet."""
    return frozenset({"local_repos"} if facts.local_repos is None else ())
