"""Facts about a target distribution that do not depend on the archive's current state: the
users and groups its base system has, the time zones of its time-zone packages, the locales
glibc supports. Read from composer/data/targets/<name>.json, which
`scripts/regenerate-target-data` makes from the real packages (composer/rootfs/targetdata.py).

Group names a blueprint uses that the target does not have follow what a user of the
target expects: Fedora's administrator group ``wheel`` is Debian's ``sudo`` and the other way
round (both are what the distribution's sudoers lets administer); any other group of the other
distribution's base system is created as a system group.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from composer import DATA
from composer.target.distros import Distro

TARGET_DATA = DATA / "targets"
# The administrator group of each family: Debian's /etc/sudoers has "%sudo ALL=(ALL:ALL) ALL",
# Fedora's "%wheel ALL=(ALL) ALL".
ADMIN_GROUP = {"apt": "sudo", "dnf": "wheel"}


@dataclass(frozen=True)
class TargetFacts:
    name: str
    users: frozenset[str]
    groups: frozenset[str]
    zones: dict[str, str]  # zone name -> the package that ships it
    locales: frozenset[str]  # glibc's SUPPORTED names: en_US.UTF-8, de_DE@euro, ...


def data_name(distro: Distro) -> str:
    return "debian-13" if distro.family == "apt" else "fedora"


@functools.cache
def load(name: str) -> TargetFacts:
    data = json.loads((TARGET_DATA / f"{name}.json").read_text())
    zones = {z: pkg for pkg, names in data["zones"].items() for z in names}
    return TargetFacts(
        name=name,
        users=frozenset(data["users"]),
        groups=frozenset(data["groups"]),
        zones=zones,
        locales=frozenset(data["locales"]),
    )


def facts_for(distro: Distro) -> TargetFacts:
    return load(data_name(distro))


def other_family(distro: Distro) -> TargetFacts:
    """The base system of the other family: where osbuild blueprints' names come from."""
    return load("fedora" if distro.family == "apt" else "debian-13")


def normal_locale(name: str) -> str:
    """glibc's spelling of a locale's codeset: en_US.utf8 and en_US.UTF-8 are one locale."""
    base, dot, rest = name.partition(".")
    if not dot:
        return name
    codeset, at, modifier = rest.partition("@")
    canonical = {"utf8": "UTF-8", "utf-8": "UTF-8"}.get(codeset.lower(), codeset)
    return f"{base}.{canonical}{at}{modifier}"


def builtin_locale(name: str) -> bool:
    """C, POSIX and C.UTF-8 need no generated locale (glibc has them built in)."""
    return name.split(".")[0] in ("C", "POSIX")


def supported_locale(facts: TargetFacts, name: str) -> bool:
    return builtin_locale(name) or normal_locale(name) in facts.locales
