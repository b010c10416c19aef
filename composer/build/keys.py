"""The stage cache's keys, derived from what each stage declares it reads
(composer/build/stages/stage.py): a stage's key is the hash of its name, the values of its
declared inputs and the keys of the stages it comes after. Every key also covers the
composer's own code and data, so a new composer never reuses an older one's result.

Plan fields are taken as the plan holds them (dataclasses and models as JSON), except that the
order of ``packages`` does not matter and passwords go in blinded: an HMAC under the cache's
secret key (composer/core/secret.py), never in a form a guess could be checked against.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from composer import DATA
from composer.build.facts import Facts, unknown
from composer.build.stages.stage import Stage
from composer.core.hashing import key_of, tree_digest
from composer.core.secret import blind
from composer.plan.plan import Plan

PACKAGE_ROOT = DATA.parent
ORDERLESS = frozenset({"plan.packages"})  # their order changes nothing that is built


@functools.cache
def composer_digest() -> str:
    """The composer's code and data: a changed composer never reuses old results."""
    return tree_digest(PACKAGE_ROOT, skip={"__pycache__"})


def repo_digests(repos: Iterable[Path]) -> tuple[str, ...]:
    return tuple(tree_digest(r) for r in repos)


def index_urls(plan: Plan) -> list[str]:
    """The archive index files that decide which package versions a build installs."""
    if plan.distribution.family == "dnf":
        repos = [r for r in plan.customizations.repositories if r.enabled]
        if any(not r.baseurls for r in repos):  # mirrorlist/metalink: no fixed index
            return []
        return [f"{r.baseurls[0].rstrip('/')}/repodata/repomd.xml" for r in repos]
    return [f"{plan.mirror.rstrip('/')}/dists/{plan.suite}/InRelease"]


def plain(value: Any) -> Any:
    """A plan value as JSON-able data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def blinded(customizations: Any, secret: bytes) -> Any:
    """Customizations as a key holds them: every password an HMAC under ``secret``."""
    data = plain(customizations)
    for user in data.get("user") or []:
        if user.get("password") is not None:
            user["password"] = blind(secret, user["password"])
    return data


def input_value(name: str, plan: Plan, facts: Facts) -> Any:
    """The value of one declared input, as it goes into a key."""
    if not name.startswith("plan."):
        if name == "secret":  # a mark of the secret: the passwords it generates change with it
            return blind(facts.secret, "stage keys")
        return plain(getattr(facts, name))
    head, *rest = name.removeprefix("plan.").split(".")
    value = getattr(plan, head)
    for part in rest:
        value = getattr(value, part)
    if name == "plan.customizations":
        return blinded(value, facts.secret)
    if name in ORDERLESS:
        return sorted(value)
    return plain(value)


def material(stage: Stage, plan: Plan, facts: Facts, keys: Mapping[str, str]) -> Any:
    """What a stage's key is the hash of (``keys``: those of the stages before it)."""
    return {
        "stage": stage.name,
        "composer": facts.composer,
        "inputs": {n: input_value(n, plan, facts) for n in stage.inputs},
        "after": {s: keys[s] for s in stage.after},
    }


def derive(plan: Plan, facts: Facts, stages: Sequence[Stage]) -> dict[str, str]:
    """Every stage's key (in the stages' order: a stage comes after those it takes), but for
    the stages that read a fact not found out yet, or come after such a stage."""
    keys: dict[str, str] = {}
    missing = unknown(facts)
    for stage in stages:
        if missing & set(stage.inputs) or any(s not in keys for s in stage.after):
            continue
        keys[stage.name] = key_of(material(stage, plan, facts, keys))
    return keys
