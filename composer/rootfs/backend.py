"""The root tree by the distribution's package backend: apt (mmdebstrap) or dnf."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from composer.plan.plan import Plan
from composer.rootfs import apt, dnf, versions


def resolve_pins(plan: Plan, *, cache: Path) -> dict[str, str]:
    """The blueprint's package version globs as the archive resolves them now (apt); dnf
    takes the globs as they are."""
    if plan.distribution.family == "dnf":
        return dict(plan.package_pins)
    return versions.resolve(
        plan.package_pins,
        suite=plan.suite,
        mirror=plan.mirror,
        arch=plan.arch,
        cache=cache,
        keys={name: plan.package_key(name) for name, _ in plan.package_pins},
    )


def make_root(
    plan: Plan,
    root: Path,
    packages: Sequence[str],
    pins: dict[str, str],
    *,
    cache: Path,
    epoch: int | None = None,
    index: Path | None = None,
) -> None:
    """Create ``root`` with ``packages`` (of the plan's) at the ``pins`` resolved before;
    ``index``: apt's list files the pins were resolved with (apt: installed from them, no
    second `apt-get update`)."""
    arch = plan.arch
    distro = plan.distribution
    if distro.family == "dnf":
        dnf.install_tree(
            root,
            distro=distro,
            arch=arch,
            packages=[f"{n}-{pins[n]}" if n in pins else n for n in packages],
            repositories=plan.customizations.repositories,
            cache=cache,
            epoch=epoch,
        )
        return
    apt.mmdebstrap(
        root,
        suite=plan.suite,
        mirror=plan.mirror,
        arch=arch,
        packages=[f"{n}={pins[n]}" if n in pins else n for n in packages],
        archive_cache=cache / "archives" / f"{plan.suite}-{arch.debian}",
        epoch=epoch,
        index=index,
    )


def installed_packages(plan: Plan, root: Path) -> dict[str, str]:
    if plan.distribution.family == "dnf":
        return dnf.installed_packages(root, plan.distribution)
    return apt.installed_packages(root)
