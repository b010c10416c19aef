"""uki-virt: Fedora's kernel-uki-virt for any distribution. From the distribution's own
kernel package a generic VM UKI (composer/toolchain/ukify.py), packaged as ``uki-virt-<kver>`` +
metapackage ``uki-virt`` (.deb) and ``kernel-uki-virt`` (.rpm), served from a local
repository. Built once per (distribution, architecture, kernel package, configuration) and
cached: every image that lists ``uki-virt`` reuses the same build.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from composer import DATA
from composer.core import locks
from composer.core.files import atomic_path, fsync_dir, sync_filesystem, write_json
from composer.core.hashing import key_of, sha256_file, tree_digest
from composer.core.log import note
from composer.core.workdir import owned_dir, scratch_dir, work_parent
from composer.spec import dps
from composer.spec.arch import Arch
from composer.target.distros import Distro
from composer.toolchain import initrd
from composer.toolchain.pcrkey import load_pcr_key
from composer.toolchain.secureboot import ensure_keys, sign_pe
from composer.toolchain.toolstree import ensure_tools_tree, tools_key
from composer.toolchain.ukify import PcrSigning, build_uki, stage_initrd_extras
from composer.uki_virt import DEFAULT_CMDLINE, kernel, packages, repo

LOG = logging.getLogger(__name__)

LAYOUT_VERSION = 2  # bump when what a build makes changes: old cache entries are then unused
INFO = "uki-virt.json"


@dataclass(frozen=True)
class UkiVirtConfig:
    """What, besides the kernel, decides the UKI's bytes."""

    cmdline: str = DEFAULT_CMDLINE
    usr_type: str = ""  # DPS /usr type of the architecture (initrd /usr discovery)
    keys: str | None = None  # Secure Boot key directory: sign the packaged UKI with db
    pcr_keys: str | None = None  # PCR policy key pair: the UKI gets .pcrsig and .pcrpkey

    @classmethod
    def for_arch(
        cls,
        arch: Arch,
        cmdline: str = DEFAULT_CMDLINE,
        keys: str | None = None,
        pcr_keys: str | None = None,
    ) -> UkiVirtConfig:
        return cls(cmdline, str(dps.by_designator("usr", arch.dps).uuid), keys, pcr_keys)

    def pcr_signing(self) -> PcrSigning | None:
        """The signed PCR policy the UKI carries (``uki-virt build --pcr-keys``)."""
        if self.pcr_keys is None:
            return None
        return PcrSigning(load_pcr_key(Path(self.pcr_keys), "--pcr-keys"))

    def fingerprint(self, arch: Arch) -> dict[str, Any]:
        with scratch_dir("initrd-extras", work_parent()) as tmp:
            stage_initrd_extras(tmp, self.usr_type)
            extras = tree_digest(tmp)
        cert = None
        if self.keys is not None:
            cert = ensure_keys(Path(self.keys))[0].cert_sha256("db")
        return {
            "v": LAYOUT_VERSION,
            "cmdline": self.cmdline,
            "dracut": sha256_file(DATA / "dracut-virt.conf"),
            "initrd_extras": extras,
            "scripts": sha256_file(DATA / "uki-virt/esp.sh"),
            "tools": tools_key(arch),
            "signed_by": cert,
            "pcr_policy": (signing.key.fingerprint if (signing := self.pcr_signing()) else None),
        }


@dataclass(frozen=True)
class UkiVirtBuild:
    repo: Path  # the local repository (apt flat repo + RPM repodata)
    kernel: kernel.KernelPackage
    files: tuple[str, ...]  # package file names in the repository
    uki_sha256: str
    uki_size: int
    initrd_modules: int
    build_seconds: float  # of the build that made it
    cached: bool  # reused from the cache this time

    def info(self) -> dict[str, Any]:
        data = asdict(self)
        data["repo"] = str(self.repo)
        return data


SBAT_HEADER = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"


def sbat_line(kver: str) -> str:
    """The UKI's own SBAT entry, after Fedora's kernel-uki-virt.<suffix> line."""
    return f"uki-virt.dps-composer,1,dps-composer,uki-virt,{kver},{packages.HOMEPAGE}\n"


def sbat_text(kver: str) -> str:
    """What ``ukify --sbat`` takes: the header line (ukify skips text without it, and keeps
    one header in the merged section) and the entry."""
    return SBAT_HEADER + sbat_line(kver)


def cache_key(distro: Distro, arch: Arch, pkg: kernel.KernelPackage, config: UkiVirtConfig) -> str:
    spec = {
        "distro": distro.id,
        "arch": arch.debian,
        "kernel": [pkg.name, pkg.version],
        **config.fingerprint(arch),
    }
    return key_of(spec)


def ensure_uki_virt(
    distro: Distro,
    arch: Arch,
    config: UkiVirtConfig,
    *,
    cache: Path,
    kernel_release: str | None = None,
    meta: str | None = None,
) -> UkiVirtBuild:
    """The cached local repository holding uki-virt for ``kernel_release`` (default: the
    kernel ``meta``, default linux-image-<arch>, depends on), built first if no cached one
    matches."""
    pkg = kernel.resolve_kernel(distro, arch, kernel_release, cache=cache, meta=meta)
    key = cache_key(distro, arch, pkg, config)
    final = cache / "uki-virt" / f"{distro.id}-{arch.debian}-{pkg.kver}-{key}"
    if (final / INFO).exists():
        note(LOG, f"uki-virt {pkg.kver} ({pkg.version}): cached build {final}")
        return _load(final, cached=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    with locks.held(final.parent / f".{final.name}.lock"):  # one build at a time makes it
        if (final / INFO).exists():  # made while we waited
            note(LOG, f"uki-virt {pkg.kver} ({pkg.version}): built meanwhile: {final}")
            return _load(final, cached=True)
        note(LOG, f"uki-virt {pkg.kver} ({pkg.version}): building into {final}")
        start = time.monotonic()
        with owned_dir(final.parent, ".tmp-uki-virt-") as tmp:
            built = _build(distro, arch, pkg, config, tmp / "repo", tmp / "work", cache)
            built["build_seconds"] = round(time.monotonic() - start, 1)
            write_json(tmp / "repo" / INFO, built)
            sync_filesystem(tmp)
            (tmp / "repo").rename(final)
            fsync_dir(final.parent)
    note(LOG, f"uki-virt built in {built['build_seconds']} s")
    return _load(final, cached=False)


def _build(
    distro: Distro,
    arch: Arch,
    pkg: kernel.KernelPackage,
    config: UkiVirtConfig,
    repo_dir: Path,
    work: Path,
    cache: Path,
) -> dict[str, Any]:
    base_files = kernel.base_files_version(distro, arch, cache=cache)
    kernel_deb, base_deb = kernel.download(
        [(pkg.name, pkg.version), ("base-files", base_files)], distro, arch, cache=cache
    )
    unpacked = kernel.unpack_kernel(kernel_deb, base_deb, work / "kernel", pkg.kver)
    # only now: a cold build makes the tools tree meanwhile (its stage holds the tree's lock)
    tools_tree = ensure_tools_tree(cache, arch)
    tree = kernel.depmod_in(tools_tree, unpacked, pkg.kver)
    uki = build_uki(
        tools_tree,
        tree,
        pkg.kver,
        config.cmdline,
        arch.efi,
        work / "uki",
        config.usr_type,
        sbat=sbat_text(pkg.kver),
        pcr=config.pcr_signing(),
    )
    modules = initrd.module_names(uki.path.parent / "initrd.img")
    if config.keys is not None:
        sign_pe(uki.path, ensure_keys(Path(config.keys))[0])
    epoch = int((tree / "boot" / f"vmlinuz-{pkg.kver}").stat().st_mtime)
    repo_dir.mkdir(parents=True)
    files = packages.write_packages(uki.path, pkg, arch, repo_dir, work / "pkg", epoch)
    repo.index_apt(repo_dir)
    repo.index_rpm(repo_dir)
    return {
        "kernel": asdict(pkg),
        "files": [f.name for f in files],
        "uki_sha256": sha256_file(uki.path),
        "uki_size": uki.path.stat().st_size,
        "initrd_modules": len(modules),
        "config": asdict(config),
    }


def _load(final: Path, *, cached: bool) -> UkiVirtBuild:
    data = json.loads((final / INFO).read_text())
    return UkiVirtBuild(
        repo=final,
        kernel=kernel.KernelPackage(**data["kernel"]),
        files=tuple(data["files"]),
        uki_sha256=data["uki_sha256"],
        uki_size=data["uki_size"],
        initrd_modules=data["initrd_modules"],
        build_seconds=data["build_seconds"],
        cached=cached,
    )


def publish(build: UkiVirtBuild, dest: Path) -> list[Path]:
    """Copy the build's packages into the repository ``dest`` (kept: earlier kernels stay
    beside it) and index it again."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in build.files:
        target = dest / name
        with atomic_path(target) as tmp:
            shutil.copyfile(build.repo / name, tmp)
        copied.append(target)
    repo.index_apt(dest)
    repo.index_rpm(dest)
    return copied
