"""Users and groups a blueprint names, against what a system has: one rule, used at plan time
(against the target's base system, composer/target/facts.py) and at build time (against the root
tree's /etc/passwd and /etc/group).

osbuild blueprints are mostly written for Fedora. A group name the system lacks is:
- ``map``-ped when it is the other family's administrator group (``wheel`` on Debian is
  ``sudo``, ``sudo`` on Fedora is ``wheel``): what the distribution's sudoers lets administer;
- ``create``-d as a system group when it is another group of the other family's base system
  (Fedora's ``lock`` or ``mem`` on Debian, Debian's ``plugdev`` or ``staff`` on Fedora);
- otherwise ``missing``: it must come from a package of the image (checked once the package
  set is resolved) or be declared with [[customizations.group]].
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import Literal

from composer.target.facts import ADMIN_GROUP

GroupAction = Literal["have", "map", "create", "missing"]


@dataclass(frozen=True)
class GroupRule:
    family: str  # "apt" or "dnf": the system's package family
    other_groups: frozenset[str]  # the other family's base groups

    def resolve(self, name: str, have: Set[str]) -> tuple[GroupAction, str]:
        """(what to do, the group name to use on this system)."""
        if name in have:
            return "have", name
        other_admin = ADMIN_GROUP["dnf" if self.family == "apt" else "apt"]
        if name == other_admin and ADMIN_GROUP[self.family] in have:
            return "map", ADMIN_GROUP[self.family]
        if name in self.other_groups:
            return "create", name
        return "missing", name


def user_groups(
    rule: GroupRule, names: Iterable[str], have: Set[str]
) -> tuple[list[str], list[str], list[str]]:
    """(group names to pass to useradd, groups to create first, names nothing provides)."""
    use, create, missing = [], [], []
    for name in names:
        action, target = rule.resolve(name, have)
        if action == "create":
            create.append(target)
        elif action == "missing":
            missing.append(name)
        use.append(target)
    return list(dict.fromkeys(use)), create, missing
