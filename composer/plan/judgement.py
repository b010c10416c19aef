"""Plan-time judgement of what a blueprint decides, against facts about the target that do not
depend on the archive's state (composer/target/facts.py): every problem with its key and reason,
the notes the plan shows, and the packages the customizations need. Pure: no I/O.

What the archive decides (package names and versions, units that packages ship, users and
groups that packages create: ``from_packages``) is checked right after package resolution
(composer/rootfs/resolution.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from composer.blueprint.customizations import Customizations
from composer.blueprint.model import Blueprint
from composer.core.errors import Problem
from composer.plan import keytable
from composer.target.accounts import GroupRule
from composer.target.distros import Distro
from composer.target.facts import (
    TargetFacts,
    facts_for,
    normal_locale,
    other_family,
    supported_locale,
)

# Debian Policy 5.6.1: lower case letters, digits, + - . ; at least two characters
_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
# rpm names (capitals allowed: NetworkManager), dnf's @group and @module:stream
_DNF_NAME = re.compile(r"^@?[A-Za-z0-9_][A-Za-z0-9_.+-]*(:[A-Za-z0-9_.+-]+)?(/[A-Za-z0-9_]+)?$")
_DEBIAN_KERNEL = re.compile(r"^linux-image-[a-z0-9][a-z0-9.+-]*$")


@dataclass
class Judgement:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    packages: list[tuple[str, str]] = field(default_factory=list)  # (name, the key needing it)

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))


def target_of(distro: Distro) -> keytable.Target:
    return "debian" if distro.family == "apt" else "fedora"


def group_rule(distro: Distro) -> GroupRule:
    return GroupRule(distro.family, other_family(distro).groups)


def judge(bp: Blueprint, distro: Distro, target: keytable.Target | None = None) -> Judgement:
    """``target``: the key table's column (default: the image of ``distro``'s family)."""
    facts = facts_for(distro)
    j = Judgement(problems=keytable.refusals(bp, target or target_of(distro)))
    _packages(bp, distro, j)
    _kernel(bp, distro, j)
    _groups(bp, distro, facts, j)
    _users(bp, facts, j)
    for need in from_packages(bp.customizations, distro):
        j.notes.append(f"{need.key}: {need.kind} {need.name} is not in {distro.id}'s base "
                       "system nor in the blueprint: a package must create it (checked after "
                       "package resolution)")  # fmt: skip
    _timezone(bp, distro, facts, j)
    _locales(bp, distro, facts, j)
    _extras(bp, distro, j)
    for i, f in enumerate(bp.customizations.files):
        if f.uri:
            j.problem(f"customizations.files[{i}].uri", "not read: the blueprint was given as "
                      "text, not as a file (dps-composer reads uri when it loads a file)")  # fmt: skip
    return j


def _packages(bp: Blueprint, distro: Distro, j: Judgement) -> None:
    for table in ("packages", "modules"):
        for i, p in enumerate(getattr(bp, table)):
            key = f"{table}[{i}].name"
            if distro.family == "apt" and not _APT_NAME.match(p.name):
                j.problem(key, f"{p.name!r}: Debian package names are lower-case letters, "
                          "digits and '+-.' (Debian Policy 5.6.1); groups (@name) are a "
                          "dnf concept")  # fmt: skip
            elif distro.family == "dnf" and not _DNF_NAME.match(p.name):
                j.problem(key, f"{p.name!r} is not an RPM package name, @group or "
                          "@module:stream")  # fmt: skip


def _kernel(bp: Blueprint, distro: Distro, j: Judgement) -> None:
    name = bp.customizations.kernel.name
    if name and distro.family == "apt" and not _DEBIAN_KERNEL.match(name):
        j.problem("customizations.kernel.name", f"{name!r}: Debian kernels are linux-image-* "
                  "packages (e.g. linux-image-cloud-amd64)")  # fmt: skip


def _groups(bp: Blueprint, distro: Distro, facts: TargetFacts, j: Judgement) -> None:
    """[[customizations.group]] entries are unique by name and gid (osbuild/blueprint
    pkg/blueprint/users_groups_customizations.go, GroupsCustomization.Validate); an
    existing group is kept (groupadd --force, osbuild/images pkg/osbuild/groups_stage.go)."""
    groups = bp.customizations.group
    _unique(j, "customizations.group", "name", [g.name for g in groups])
    _unique(j, "customizations.group", "gid", [g.gid for g in groups])
    names = {g.name for g in groups}
    for g in groups:
        if g.name in facts.groups:
            j.notes.append(f"group {g.name}: {distro.id} already has it; kept as it is "
                           "(osbuild's groupadd --force)")  # fmt: skip
    rule = group_rule(distro)
    have = facts.groups | set(names)
    for u in bp.customizations.user:
        for name in u.groups:
            action, target = rule.resolve(name, have)
            if action == "map":
                j.notes.append(f"user {u.name}: group {name} is {target} on {distro.id} (its "
                               "administrator group)")  # fmt: skip
            elif action == "create":
                j.notes.append(f"user {u.name}: group {name} ({other_family(distro).name}'s) "
                               f"is created as a system group on {distro.id}")  # fmt: skip


def _unique(j: Judgement, table: str, key: str, values: list[object]) -> None:
    """Each value (None: not given) once in the table: later ones are problems."""
    first: dict[object, int] = {}
    for i, v in enumerate(values):
        if v is not None and v in first:
            j.problem(f"{table}[{i}].{key}", f"{v!r} is already given at {table}[{first[v]}]")
        if v is not None:
            first.setdefault(v, i)


def _users(bp: Blueprint, facts: TargetFacts, j: Judgement) -> None:
    _unique(j, "customizations.user", "name", [u.name for u in bp.customizations.user])
    for i, u in enumerate(bp.customizations.user):
        if u.name not in facts.users:
            continue
        # osbuild: an existing user is changed with usermod, and its uid cannot change
        # (osbuild stages/org.osbuild.users: "can't set uid of existing user")
        j.notes.append(f"user {u.name}: already in the base system; set with usermod "
                       "(password, keys, groups, shell, home, description)")  # fmt: skip
        if u.uid is not None and not (u.name == "root" and u.uid == 0):
            j.problem(f"customizations.user[{i}].uid", f"{u.name} already exists in the base "
                      "system: its uid cannot be changed (leave uid out)")  # fmt: skip


@dataclass(frozen=True)
class Need:
    """A user or group the blueprint names that neither the base system nor the blueprint
    makes: one of the image's packages must create it."""

    key: str
    kind: str  # "user" or "group"
    name: str


def from_packages(c: Customizations, distro: Distro) -> list[Need]:
    facts = facts_for(distro)
    users = set(facts.users) | {u.name for u in c.user}
    groups = set(facts.groups) | {g.name for g in c.group}
    rule = group_rule(distro)
    needs = []
    for i, u in enumerate(c.user):
        for k, name in enumerate(u.groups):
            if rule.resolve(name, groups)[0] == "missing":
                needs.append(Need(f"customizations.user[{i}].groups[{k}]", "group", name))
    for i, key in enumerate(c.sshkey):
        if key.user not in users:
            needs.append(Need(f"customizations.sshkey[{i}].user", "user", key.user))
    for table in ("files", "directories"):
        for i, node in enumerate(getattr(c, table)):
            if isinstance(node.user, str) and node.user not in users:
                needs.append(Need(f"customizations.{table}[{i}].user", "user", node.user))
            if isinstance(node.group, str) and rule.resolve(node.group, groups)[0] == "missing":
                needs.append(Need(f"customizations.{table}[{i}].group", "group", node.group))
    return needs


def _timezone(bp: Blueprint, distro: Distro, facts: TargetFacts, j: Judgement) -> None:
    tz = bp.customizations.timezone.timezone
    if not tz:
        return
    package = facts.zones.get(tz)
    if package is None:
        near = sorted(z for z in facts.zones if z.lower() == tz.lower() or
                      z.split("/")[-1].lower() == tz.split("/")[-1].lower())  # fmt: skip
        hint = f"; did you mean {', '.join(near[:3])}?" if near else " such as 'Europe/Berlin'"
        j.problem("customizations.timezone.timezone", f"{tz!r} is not a time zone of "
                  f"{distro.id} (its tz database){hint}")  # fmt: skip
        return
    key = "customizations.timezone.timezone"
    j.packages.append(("tzdata", key))
    if package != "tzdata":
        j.packages.append((package, key))
        j.notes.append(f"time zone {tz}: an old name that only {package} ships; added")


def _locales(bp: Blueprint, distro: Distro, facts: TargetFacts, j: Judgement) -> None:
    langs = bp.customizations.locale.languages
    for i, lang in enumerate(langs):
        if not supported_locale(facts, lang):
            j.problem(f"customizations.locale.languages[{i}]", f"{lang!r} is not a locale "
                      "glibc supports (its SUPPORTED list), e.g. 'en_US.UTF-8'")  # fmt: skip
    needed = [normal_locale(x) for x in langs if x.split(".")[0] not in ("C", "POSIX")]
    if not needed:
        return
    key = "customizations.locale.languages"
    if distro.family == "apt":
        j.packages.append(("locales", key))
    else:  # Fedora: one glibc-langpack-<language> package per language (glibc.spec)
        j.packages += [(f"glibc-langpack-{x.split('_')[0].split('.')[0].split('@')[0]}", key)
                       for x in needed]  # fmt: skip


def _extras(bp: Blueprint, distro: Distro, j: Judgement) -> None:
    c = bp.customizations
    if c.timezone.ntpservers and distro.family == "apt":
        # Fedora: timesyncd is in systemd-udev (Fedora's systemd split-files.py: timesync)
        j.packages.append(("systemd-timesyncd", "customizations.timezone.ntpservers"))
    if c.cacerts.pem_certs:
        j.packages.append(("ca-certificates", "customizations.cacerts.pem_certs"))
