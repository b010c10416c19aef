"""The tools tree: a Debian trixie tree with dracut, ukify, systemd-boot and systemd's
offline tools. The build host (bookworm) has none of them at the versions needed; every
command that needs them runs chrooted into this tree. Built once and reused."""

from __future__ import annotations

from pathlib import Path

from composer.core import locks
from composer.core.files import fsync_dir, sync_filesystem
from composer.core.hashing import key_of
from composer.core.workdir import owned_dir
from composer.rootfs.apt import mmdebstrap
from composer.spec.arch import Arch

TOOLS_SUITE = "trixie"
TOOLS_MIRROR = "http://deb.debian.org/debian"
TOOLS_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "dracut-core",
    "systemd-ukify",
    "systemd-boot-efi",
    "systemd-boot-tools",
    "systemd-cryptsetup",
    "systemd-repart",
    "systemd-container",
    "cryptsetup-bin",
    "lvm2",
    "dmsetup",
    "kmod",
    "zstd",
    "tpm2-tools",
    "python3-pefile",
)
LAYOUT_VERSION = 1  # bump when what the tree must contain changes


def tools_packages(arch: Arch) -> tuple[str, ...]:
    """Everything the tree holds: the common tools plus the EFI GRUB of ``arch`` (grub-mkimage
    and its modules, for [boot] loader = "grub2")."""
    return (*TOOLS_PACKAGES, f"grub-efi-{arch.debian}-bin")


def tools_key(arch: Arch) -> str:
    spec = {
        "suite": TOOLS_SUITE,
        "arch": arch.debian,
        "packages": tools_packages(arch),
        "v": LAYOUT_VERSION,
    }
    return key_of(spec)


def tools_tree_path(cache_dir: Path, arch: Arch) -> Path:
    return cache_dir / "trees" / f"tools-{TOOLS_SUITE}-{arch.debian}-{tools_key(arch)}"


def tools_tree_ready(path: Path) -> bool:
    """Whether the tree at ``path`` is complete (its last package is in)."""
    return (path / "usr/bin/ukify").exists()


def ensure_tools_tree(cache_dir: Path, arch: Arch) -> Path:
    """The cached tools tree for ``arch``, built if missing: by one build at a time (the
    others wait for it and take its tree), in a locked temporary directory, synced to disk
    and renamed into place."""
    final = tools_tree_path(cache_dir, arch)
    trees = final.parent
    if tools_tree_ready(final):
        return final
    trees.mkdir(parents=True, exist_ok=True)
    with locks.held(trees / f".{final.name}.lock"):
        if tools_tree_ready(final):  # built while we waited
            return final
        with owned_dir(trees, ".tmp-tools-") as tmp:
            target = tmp / "tree"
            mmdebstrap(
                target,
                suite=TOOLS_SUITE,
                mirror=TOOLS_MIRROR,
                arch=arch,
                packages=tools_packages(arch),
                archive_cache=cache_dir / "archives" / f"{TOOLS_SUITE}-{arch.debian}",
            )
            sync_filesystem(target)
            target.rename(final)
            fsync_dir(trees)
    return final
