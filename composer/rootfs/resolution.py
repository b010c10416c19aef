"""After package resolution, before the long stages: what the archive decides about a plan.

The whole package set is resolved as the build will install it (composer/rootfs/pkgset.py);
its .deb files are downloaded into the shared package cache (the root tree stage takes them
from there) and read (composer/rootfs/pkgfacts.py). Then every package name and version the blueprint
asks for must resolve, every unit it enables or disables must be shipped by a package of the
image, by the blueprint's own [[customizations.files]] or by the composer, and every user and
group it names must be made by the base system, the blueprint or a package. Problems are
raised together, each at its blueprint key (KeyedProblems; the CLI adds file and line).

Run by `build` (composer/build/pipeline.py) and by `plan --resolve`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from composer.blueprint.customizations import Customizations
from composer.core.errors import KeyedProblems, Problem
from composer.core.files import atomic_write
from composer.core.lifetime import stop_scope, stoppable
from composer.plan.judgement import from_packages
from composer.plan.plan import Plan
from composer.rootfs import pkgset, versions
from composer.rootfs.customize import CHECK_UNIT
from composer.rootfs.pkgfacts import PackageFacts, facts, unit_aliases, unit_file, unit_name
from composer.target.distros import KERNEL_UKI_VIRT, UKI_VIRT, get_distro

# Units every image has from the composer itself (composer/rootfs/customize.py)
COMPOSER_UNITS = (CHECK_UNIT,)
# What Fedora-written blueprints call units that Debian ships under another name
DEBIAN_NAMES = {"httpd.service": "apache2.service (package apache2)",
                "chronyd.service": "chrony.service (package chrony)",
                "crond.service": "cron.service (package cron)",
                "nfs-server.service": "nfs-kernel-server.service (package nfs-kernel-server)",
                "named.service": "named.service (package bind9)",
                "sshd.service": "ssh.service (package openssh-server)"}  # fmt: skip
_E_PACKAGE = re.compile(r"(?:package|for) '?([A-Za-z0-9@._+:-]+)'?")


@dataclass(frozen=True)
class Resolved:
    packages: int  # how many the image installs
    units: frozenset[str]
    users: frozenset[str]
    groups: frozenset[str]
    programs: frozenset[str]


def check(
    plan: Plan,
    pins: dict[str, str] | None,
    *,
    cache: Path,
    key: str | None = None,
    downloaded: Callable[[], None] = lambda: None,
    lists_to: Path | None = None,
) -> Resolved | None:
    """Raise KeyedProblems naming every key the resolved package set cannot satisfy; None
    for targets whose archive this cannot read (dnf: checked by dnf when it installs).
    ``pins``: the version globs as resolved already (build), or None to resolve them here.
    ``key``: the root tree's cache key (package set, pins, the archive's index): a set resolved
    for it before is taken as it was (a customization change costs no apt run).
    ``downloaded``: called once the set's packages are in the package cache, before they are
    read and judged (the root tree may be installed from them meanwhile), or at once when
    nothing is downloaded here (dnf).
    ``lists_to``: where the archive's index goes when it is fetched here (a set resolved
    before is not: then nothing is put there), for the root tree to install from the very
    index the set was resolved with."""
    if plan.distribution.family != "apt":
        downloaded()
        return None
    memo = cache / "resolutions" / f"{key}.json" if key else None
    problems: list[Problem] = []
    if memo is not None and memo.is_file():
        packages = tuple(pkgset.ResolvedPackage(*p) for p in json.loads(memo.read_text()))
    else:
        packages, problems = _resolve(plan, pins, cache, lists_to)
        if memo is not None and packages and not problems:
            memo.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(memo, json.dumps([dataclasses.astuple(p) for p in packages]) + "\n")
    found = None
    if packages:
        state = pkgset.state_dir(cache, plan.suite, plan.arch)
        archives = cache / "archives" / f"{plan.suite}-{plan.arch.debian}"
        debs = pkgset.download(packages, state=state, arch=plan.arch, archives=archives)  # fmt: skip
        downloaded()
        found = _union(_read_facts(debs, cache / "package-facts"), len(debs))
        problems += [*_service_problems(plan.customizations, found),
                     *_account_problems(plan, found), *_sshd_problems(plan.customizations, found)]  # fmt: skip
    if problems:
        raise KeyedProblems(problems)
    return found


def _resolve(
    plan: Plan, pins: dict[str, str] | None, cache: Path, lists_to: Path | None = None
) -> tuple[tuple[pkgset.ResolvedPackage, ...], list[Problem]]:
    """The package set as apt resolves it against the archive's index now."""
    state = pkgset.state_dir(cache, plan.suite, plan.arch)
    local = (UKI_VIRT, KERNEL_UKI_VIRT)  # from the composer's own repository (uki-virt)
    names = [n for n in plan.packages if n not in local]
    available = versions.archive_versions(
        [n for n, _ in plan.package_pins] or names[:1], suite=plan.suite, mirror=plan.mirror,
        arch=plan.arch, state=state, lists_to=lists_to,
    )  # fmt: skip
    problems: list[Problem] = []
    if pins is None:
        keys = {n: plan.package_key(n) for n, _ in plan.package_pins}
        pins, problems = versions.match_pins(plan.package_pins, available, plan.suite, keys)
        names = [n for n in names if n in pins or n not in dict(plan.package_pins)]
    packages, refused = _simulate(plan, names, pins, state)
    return packages, [*problems, *refused]


def _simulate(
    plan: Plan, names: list[str], pins: dict[str, str], state: Path
) -> tuple[tuple[pkgset.ResolvedPackage, ...], list[Problem]]:
    """The resolved set; names apt cannot find are problems and left out, and the rest is
    resolved again (so the units of what remains are still checked)."""
    problems: list[Problem] = []
    base = pkgset.minbase(state)
    for _ in range(4):
        specs = [f"{n}={pins[n]}" if n in pins else n for n in names]
        result = pkgset.simulate([*base, *specs], state=state, arch=plan.arch)
        if result.packages:
            return result.packages, problems
        bad = [n for n in names if n in _E_PACKAGE.findall(result.problem)]
        problems += _apt_problems(plan, result.problem)
        if not bad:
            break
        names = [n for n in names if n not in bad]
    return (), problems


def _read_facts(debs: list[Path], memo: Path) -> list[PackageFacts]:
    """The facts of every package, two read at a time (decompression releases the GIL:
    the 309 packages of the test suite's cache in 7.8 s, 12.8 s one at a time), stopped
    with the stage that asked (a package started is read to its end)."""
    scope = stop_scope()

    def one(deb: Path) -> PackageFacts:
        if scope is None:
            return facts(deb, memo)
        scope.check()
        with stoppable(scope):  # a dpkg-deb this starts is the stage's child
            return facts(deb, memo)

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pkgfacts")
    try:
        return list(pool.map(one, sorted(debs, key=_size, reverse=True)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _size(path: Path) -> int:
    return path.stat().st_size


def _union(all_facts: list[PackageFacts], count: int) -> Resolved:
    return Resolved(
        packages=count,
        units=frozenset(u for f in all_facts for u in f.units),
        users=frozenset(u for f in all_facts for u in f.users),
        groups=frozenset(g for f in all_facts for g in f.groups),
        programs=frozenset(p for f in all_facts for p in f.files),
    )


def _apt_problems(plan: Plan, reason: str) -> list[Problem]:
    """apt's refusal, at the keys of the packages it names (else at packages)."""
    problems = []
    for part in reason.split("; "):
        names = [n for n in _E_PACKAGE.findall(part) if n in plan.packages]
        key = plan.package_key(names[0]) if names else "packages"
        problems.append(Problem(key, f"{plan.suite} cannot satisfy it: {part}"))
    return problems


def blueprint_units(c: Customizations) -> set[str]:
    """Units the blueprint ships itself ([[customizations.files]] in a unit directory) and the
    names their [Install] Alias= lines give them."""
    out = set()
    for f in c.files:
        name = unit_file(f.path)
        if name:
            out.add(name)
            out.update(unit_aliases(f.data))
    return out


def shipped(name: str, units: set[str] | frozenset[str]) -> bool:
    """``name`` exists as a unit file, or as an instance of a template that does."""
    if name in units:
        return True
    m = re.fullmatch(r"([^@]+)@[^.]+(\.[a-z]+)", name)
    return bool(m and f"{m.group(1)}@{m.group(2)}" in units)


def _service_problems(c: Customizations, found: Resolved) -> list[Problem]:
    units = set(found.units) | blueprint_units(c) | set(COMPOSER_UNITS)
    problems = []
    for verb in ("enabled", "disabled"):  # systemctl masks units that do not exist, too
        for i, raw in enumerate(getattr(c.services, verb)):
            name = unit_name(raw)
            if shipped(name, units):
                continue
            hint = f"; on Debian that is {DEBIAN_NAMES[name]}" if name in DEBIAN_NAMES else ""
            fix = ("add the package that ships it to [[packages]]" if verb == "enabled" else
                   "there is nothing to disable: leave it out, or add the package that ships "
                   "it to [[packages]]")  # fmt: skip
            problems.append(Problem(
                f"customizations.services.{verb}[{i}]",
                f"{name}: no package of the image ({found.packages} resolved) ships this unit, "
                f"and no [[customizations.files]] entry does; {fix}{hint}",
            ))  # fmt: skip
    return problems


def _account_problems(plan: Plan, found: Resolved) -> list[Problem]:
    distro = get_distro(plan.distro)
    problems = []
    for need in from_packages(plan.customizations, distro):
        have = found.users if need.kind == "user" else found.groups
        if need.name not in have:
            declare = "[[customizations.user]]" if need.kind == "user" else (
                "[[customizations.group]]")  # fmt: skip
            problems.append(Problem(need.key, f"{need.kind} {need.name!r}: neither "
                                    f"{distro.id}'s base system nor a package of the image "
                                    f"makes it; declare it under {declare}"))  # fmt: skip
    return problems


def _sshd_problems(c: Customizations, found: Resolved) -> list[Problem]:
    if c.sshd.settings() and not any(PurePosixPath(p).name == "sshd" for p in found.programs):
        return [Problem("customizations.sshd", "no package of the image ships sshd; add "
                        "openssh-server to [[packages]]")]  # fmt: skip
    return []
