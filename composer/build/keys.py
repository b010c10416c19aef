"""What each cached build stage reads, hashed: the keys of the stage cache.

A key covers everything that can change a stage's result: the relevant part of the plan, the
package archive's index as it is now (so a new package version upstream is a miss), local
repositories by content, the Secure Boot keys, the tools tree and the composer's own code and
data (a new composer never reuses an older one's result).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from composer import DATA
from composer.core.hashing import key_of, tree_digest
from composer.core.secret import blind
from composer.plan.plan import Plan

PACKAGE_ROOT = DATA.parent


@functools.cache
def composer_digest() -> str:
    """The composer's code and data: a changed composer never reuses old results."""
    return tree_digest(PACKAGE_ROOT, skip={"__pycache__"})


def index_urls(plan: Plan) -> list[str]:
    """The archive index files that decide which package versions a build installs."""
    if plan.distribution.family == "dnf":
        repos = [r for r in plan.customizations.repositories if r.enabled]
        if any(not r.baseurls for r in repos):  # mirrorlist/metalink: no fixed index
            return []
        return [f"{r.baseurls[0].rstrip('/')}/repodata/repomd.xml" for r in repos]
    return [f"{plan.mirror.rstrip('/')}/dists/{plan.suite}/InRelease"]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def root_key(
    plan: Plan,
    *,
    index: str,
    pins: dict[str, str],
    local_repos: Iterable[Path],
    tools: str,
    epoch: int | None,
) -> str:
    """The root tree (packages only, before customizations)."""
    c = plan.customizations
    return key_of(
        {
            "stage": "root",
            "composer": composer_digest(),
            "tools": tools,
            "distro": plan.distro,
            "suite": plan.suite,
            "mirror": plan.mirror,
            "architecture": plan.architecture,
            "packages": sorted(plan.packages),
            "pins": pins,
            "index": index,
            "epoch": epoch,
            "repositories": _plain(c.repositories),
            "local_repos": [tree_digest(r) for r in local_repos],
        }
    )


def uki_key(plan: Plan, *, root: str, usr_type: str, tools: str) -> str:
    """The generic UKI built from the root tree (customizations never reach the initrd)."""
    return key_of(
        {
            "stage": "uki",
            "root": root,
            "tools": tools,
            "cmdline": plan.cmdline,
            "usr_type": usr_type,
            "efi": plan.arch.efi,
        }
    )


def image_key(plan: Plan, *, root: str, uki: str, keys: Path | None, secret: bytes) -> str:
    """Everything after the root tree: customizations, boot chain, file systems, disk,
    output formats, Secure Boot keys. Passwords go in blinded with the cache's ``secret``
    (composer/core/secret.py), and so does a mark of the secret itself: the passwords a
    build generates from it change with it."""
    return key_of(
        {
            "stage": "image",
            "root": root,
            "uki": uki,
            "plan": blinded_plan(plan, secret),
            "keys": tree_digest(keys) if keys is not None and keys.is_dir() else None,
            "secret": blind(secret, "image key"),
        }
    )


def blinded_plan(plan: Plan, secret: bytes) -> Any:
    """The plan as a cache key holds it: no secret in recoverable form."""
    data = _plain(plan)
    for user in data["customizations"].get("user") or []:
        if user.get("password") is not None:
            user["password"] = blind(secret, user["password"])
    return data
