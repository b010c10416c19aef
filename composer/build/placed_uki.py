"""uki-virt in an image build: the local repository ``uki-virt`` is installed from into the
root tree (beside the tree's own packages, so that the root tree need not wait for the
uki-virt build), and afterwards the UKI its install scripts put on the (staged) ESP."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from composer.core import tools
from composer.core.errors import ComposerError
from composer.plan.plan import Plan
from composer.rootfs.intree import Tree
from composer.target.distros import KERNEL_UKI_VIRT, UKI_VIRT
from composer.uki_virt.virt import UkiVirtBuild, UkiVirtConfig, ensure_uki_virt

ESP_DIRS = ("efi", "boot/efi", "boot")  # where the install scripts look, in that order
STATE_DIR = "/var/lib/uki-virt"
DPKG_DIR = "/var/lib/dpkg"


class PlacedUkiError(ComposerError):
    """The image lists uki-virt, but no UKI was put on its ESP."""


@dataclass(frozen=True)
class PlacedUki:
    path: Path  # the UKI, moved out of the tree
    rel: str  # its path on the ESP: EFI/Linux/<entry-token>-<kver>.efi
    kernel_version: str
    esp_dir: str  # where in the tree the scripts found the ESP: efi, boot/efi, boot


def lists_uki_virt(plan: Plan) -> bool:
    return UKI_VIRT in plan.packages or KERNEL_UKI_VIRT in plan.packages


def built_here(plan: Plan) -> bool:
    """Does the composer build this plan's uki-virt (apt), rather than the distribution ship
    it (dnf: kernel-uki-virt)?"""
    return UKI_VIRT in plan.packages and plan.distribution.family == "apt"


def archive_packages(plan: Plan) -> list[str]:
    """The plan's packages that its root tree installs from the archive: all but uki-virt when
    the composer builds it (:func:`install_from_repos` adds that to the tree)."""
    return [p for p in plan.packages if not (p == UKI_VIRT and built_here(plan))]


def install_from_repos(root: Path, repos: Sequence[Path]) -> None:
    """Install every .deb of the local ``repos`` (uki-virt and the uki-virt-<kver> it depends
    on) into the root tree with the tree's own dpkg, chrooted, as mmdebstrap installs the
    tree's packages: their scripts put the UKI on the tree's ESP directory (/efi, made here as
    mmdebstrap's tree has none). No log with the time in it; dpkg's backups removed, as
    mmdebstrap removes them. The tree's packages may have made any of these paths a link:
    every path is resolved inside the tree (composer/rootfs/intree.py)."""
    debs = sorted(d for r in repos for d in r.glob("*.deb"))
    if not debs:
        return
    staging = f"/tmp/dps-composer-uki-virt-{secrets.token_hex(8)}"
    with Tree(root) as t:
        t.makedirs("/efi")
        t.makedirs(staging, mode=0o700)
        try:
            for deb in debs:
                t.write(f"{staging}/{deb.name}", deb.read_bytes())
            tools.run(
                ["chroot", str(root), "dpkg", "--log=/dev/null", "--install", "--"]
                + [f"{staging}/{d.name}" for d in debs],
                env={
                    "PATH": tools.SYSTEM_PATH,
                    "LC_ALL": "C.UTF-8",
                    "DEBIAN_FRONTEND": "noninteractive",
                },
            )
        finally:
            t.rmtree(staging)
        drop_dpkg_backups(t)


def drop_dpkg_backups(t: Tree) -> None:
    """dpkg's ``*-old`` copies of its database files, which mmdebstrap removes too."""
    for name in t.listdir(DPKG_DIR):
        if name.endswith("-old"):
            t.unlink(f"{DPKG_DIR}/{name}")


def _kernel_package(plan: Plan) -> str | None:
    """The linux-image-* (meta)package the image installs, if any."""
    return next((p for p in plan.packages if p.startswith("linux-image-")), None)


def prepare_repo(plan: Plan, cache: Path) -> UkiVirtBuild | None:
    """The cached uki-virt repository for this plan's distribution, kernel and command line;
    None when the blueprint does not list uki-virt or the distribution ships it (dnf)."""
    if not built_here(plan):
        return None
    config = UkiVirtConfig.for_arch(plan.arch, plan.cmdline)
    return ensure_uki_virt(
        plan.distribution, plan.arch, config, cache=cache, meta=_kernel_package(plan)
    )


def _recorded(t: Tree) -> list[tuple[str, str]]:
    """(kernel release, what the install script recorded) for every uki-virt kernel."""
    found = []
    for name in t.listdir(STATE_DIR):
        if t.is_file(f"{STATE_DIR}/{name}"):
            found.append((name, t.read_text(f"{STATE_DIR}/{name}").strip()))
    return sorted(found)


def _found_on_esp(t: Tree) -> list[tuple[str, str]]:
    """(kernel release, /path) of UKIs on a staged ESP that no record names (install scripts
    of a distribution's own kernel-uki-virt, e.g. Fedora's)."""
    found = []
    modules = t.listdir("/usr/lib/modules")
    for esp in ESP_DIRS:
        for name in t.listdir(f"/{esp}/EFI/Linux"):
            if not name.endswith(".efi") or not t.is_file(f"/{esp}/EFI/Linux/{name}"):
                continue
            kvers = [m for m in modules if name.removesuffix(".efi").endswith(m)]
            if kvers:
                found.append((max(kvers, key=len), f"/{esp}/EFI/Linux/{name}"))
    return found


def take_placed_uki(root: Path, dest: Path) -> PlacedUki:
    """Move the newest kernel's UKI that the package scripts copied to the tree's ESP
    directory out of the tree into ``dest`` (it goes onto the ESP image; the root file
    system keeps an empty mount point). The recorded path is read inside the tree."""
    with Tree(root) as t:
        placed = _recorded(t) or _found_on_esp(t)
        if not placed:
            raise PlacedUkiError(
                f"the blueprint lists {UKI_VIRT}, but its install scripts put no UKI on the ESP: "
                f"nothing recorded in /{STATE_DIR} and no EFI/Linux/*.efi under "
                + ", ".join(f"/{d}" for d in ESP_DIRS)
            )
        kver, where = placed[-1]
        if where == "kernel-install":
            raise PlacedUkiError(
                f"{UKI_VIRT} {kver} was installed with kernel-install (a mounted ESP was found "
                "in the build root), so the composer cannot tell which file it wrote"
            )
        target = PurePosixPath(where)
        esp = next((d for d in ESP_DIRS if target.is_relative_to(f"/{d}/EFI")), None)
        if esp is None or ".." in target.parts or not t.is_file(where):
            raise PlacedUkiError(f"{UKI_VIRT} {kver}: the recorded ESP copy {where!r} is not there")
        rel = target.relative_to(f"/{esp}").as_posix()
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / target.name
        t.copy_out(where, path)
        # what the scripts wrote below the ESP mount point (EFI/) goes to the ESP image
        # instead; the mount point stays, as the package left it otherwise
        t.rmtree(f"/{esp}/EFI")
    return PlacedUki(path, rel, kver, esp)
