"""A distribution's own kernel package, resolved from its archive index, downloaded and
unpacked into a tree that :func:`composer.uki.build.build_uki` can build a UKI from.

The archive index is read with the host's apt into the same private state directory that
package pins use (composer/rootfs/versions.py); the .debs are downloaded into the archive
cache that mmdebstrap shares, so an image build later finds them there.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from composer.core import tools
from composer.core.chroot import run_in
from composer.core.errors import HostError
from composer.core.files import write_json
from composer.core.hashing import key_of
from composer.rootfs import pkgset, versions
from composer.spec.arch import Arch
from composer.target.distros import Distro

_IMAGE_DEP = re.compile(r"^linux-image-(?P<kver>[0-9][^\s(]*)\s*(\(=\s*(?P<ver>[^)\s]+)\))?$")


class KernelNotFoundError(HostError):
    """The archive has no kernel package of the wanted version."""


@dataclass(frozen=True)
class KernelPackage:
    name: str  # linux-image-6.12.43+deb13-amd64
    version: str  # Debian version of that package: 6.12.43-1
    kver: str  # the kernel release (uname -r, /usr/lib/modules/<kver>): 6.12.43+deb13-amd64
    arch: str  # dpkg architecture


def image_dependency(depends: str) -> tuple[str, str | None] | None:
    """The (kernel release, version) a linux-image-<arch> metapackage's Depends names."""
    for alternative in depends.split(","):
        m = _IMAGE_DEP.match(alternative.split("|")[0].strip())
        if m:
            return m.group("kver"), m.group("ver")
    return None


def control_field(stanza: str, field: str) -> str | None:
    """One field of an `apt-cache show` / control stanza (first stanza only)."""
    for line in stanza.splitlines():
        if not line.strip():
            break
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
    return None


def _apt(state: Path, arch: Arch) -> list[str]:
    return versions._apt_options(state, arch)  # same private apt state as the version pins


def index_state(cache: Path, distro: Distro, arch: Arch) -> Path:
    return cache / "apt-index" / f"{distro.suite}-{arch.debian}"


def resolve_kernel(
    distro: Distro,
    arch: Arch,
    kernel: str | None,
    *,
    cache: Path,
    meta: str | None = None,
) -> KernelPackage:
    """``kernel`` (a kernel release such as 6.12.43+deb13-amd64), or the one that ``meta``
    (default linux-image-<arch>) depends on; its package's newest version in the archive.

    The answer is remembered for the archive index it came from (its InRelease digest): while
    the archive does not change, no index is downloaded again."""
    state = index_state(cache, distro, arch)
    meta = meta or f"linux-image-{arch.debian}"
    index, _why = versions.archive_index_digest(
        [f"{distro.mirror.rstrip('/')}/dists/{distro.suite}/InRelease"]
    )
    memo = state / f"kernel-{key_of([index, meta, kernel, arch.debian])}.json" if index else None
    if memo is not None and memo.is_file():
        return KernelPackage(**json.loads(memo.read_text()))
    pkg = _resolve_kernel(distro, arch, kernel, meta, state)
    if memo is not None:
        write_json(memo, dataclasses.asdict(pkg))
    return pkg


def _resolve_kernel(
    distro: Distro, arch: Arch, kernel: str | None, meta: str, state: Path
) -> KernelPackage:
    versions.archive_versions(
        [meta], suite=distro.suite, mirror=distro.mirror, arch=arch, state=state
    )
    if kernel is None and _IMAGE_DEP.match(meta):  # already a kernel, not a metapackage
        kernel = meta.removeprefix("linux-image-")
    with versions.index_locked(state):
        if kernel is None:
            stanza = tools.output(["apt-cache", *_apt(state, arch), "show", meta])
            dep = image_dependency(control_field(stanza, "Depends") or "")
            if dep is None:
                raise KernelNotFoundError(
                    f"{distro.id}: {meta} names no linux-image-<release> package in its Depends"
                )
            kernel = dep[0]
        name = f"linux-image-{kernel}"
        madison = tools.output(["apt-cache", *_apt(state, arch), "madison", name])
    found = versions.parse_madison(madison)
    if not found.get(name):
        raise KernelNotFoundError(
            f"{distro.id}: no package {name} in {distro.suite}; give --kernel as a kernel "
            f"release (uname -r) that the archive has, or leave it out for the one {meta} "
            "depends on"
        )
    return KernelPackage(name, found[name][0], kernel, arch.debian)


def download(
    packages: list[tuple[str, str]], distro: Distro, arch: Arch, *, cache: Path
) -> list[Path]:
    """(name, version) pairs as .deb files in the shared archive cache (downloaded if missing)."""
    archives = cache / "archives" / f"{distro.suite}-{arch.debian}"
    return pkgset.download(
        [pkgset.ResolvedPackage(n, v, arch.debian) for n, v in packages],
        state=index_state(cache, distro, arch),
        arch=arch,
        archives=archives,
    )


def base_files_version(distro: Distro, arch: Arch, *, cache: Path) -> str:
    """base-files' version in the (already fetched) index: its /usr/lib/os-release is the .osrel."""
    state = index_state(cache, distro, arch)
    with versions.index_locked(state):
        text = tools.output(["apt-cache", *_apt(state, arch), "madison", "base-files"])
    madison = versions.parse_madison(text)
    if not madison.get("base-files"):
        raise KernelNotFoundError(f"{distro.id}: base-files is not in {distro.suite}")
    return madison["base-files"][0]


def unpack_kernel(kernel_deb: Path, base_files_deb: Path, dest: Path, kver: str) -> Path:
    """``dest`` as a tree with boot/vmlinuz-<kver>, usr/lib/modules/<kver> and
    usr/lib/os-release, everything build_uki reads from an image tree once :func:`depmod_in`
    has made modules.dep; host tools only (a build unpacks while the tools tree is made)."""
    dest.mkdir(parents=True, exist_ok=True)
    tools.run(["dpkg-deb", "-x", kernel_deb, dest])
    with tempfile.TemporaryDirectory(prefix="base-files-", dir=dest.parent) as tmp:
        tools.run(["dpkg-deb", "-x", base_files_deb, tmp])
        (dest / "usr/lib").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "usr/lib/os-release", dest / "usr/lib/os-release")
    if not (dest / "boot" / f"vmlinuz-{kver}").exists():
        raise KernelNotFoundError(f"{kernel_deb.name} has no boot/vmlinuz-{kver}")
    return dest


def depmod_in(tools_tree: Path, dest: Path, kver: str) -> Path:
    """Debian's kernel packages ship no modules.dep (their postinst runs depmod): made for the
    unpacked tree ``dest`` by the tools tree's depmod."""
    modules = dest / "usr/lib/modules"
    run_in(tools_tree, ["depmod", kver], binds=[(modules, "/usr/lib/modules")])
    return dest
