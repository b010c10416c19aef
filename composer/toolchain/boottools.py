"""The boot tools tree: QEMU, UEFI firmware and swtpm from Debian trixie, for ``boot``.

Bookworm's QEMU 7.2 emulates a guest about half as fast under TCG as trixie's QEMU 10.0
(whose TCG also runs x86 guests with several vCPUs without the text-patching crash). The
tree is made once with mmdebstrap, like the build's tools tree, in the same cache, and its
programs run from the host without a chroot: started by the tree's own dynamic loader with
the tree's libraries (``ld.so --library-path``, see ld.so(8)), QEMU told where its data
(``-L``) and modules (``QEMU_MODULE_DIR``) are and kept off the host's by a qemu-bundle (see
BUNDLE_LINK), and the firmware descriptors read from the tree with their paths re-rooted there
(composer/image/firmware.py). libguestfs starts the tree's QEMU too, once the tree is made
(GUESTFS_HV, composer/toolchain/guestfs.py).

The tree is keyed by what it holds: its directory is named by the hash of every installed
package's version, and a small pointer file per request (suite, architecture, packages)
names the tree that request made last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from composer.core import locks
from composer.core.errors import ComposerError
from composer.core.files import atomic_write, fsync_dir, sync_filesystem
from composer.core.hashing import key_of
from composer.core.workdir import owned_dir
from composer.rootfs.apt import mmdebstrap
from composer.spec.arch import ARCHES, Arch
from composer.toolchain.toolstree import TOOLS_MIRROR, TOOLS_SUITE

# per guest architecture: the emulator and the firmware packages
GUEST_PACKAGES = {
    "x86_64": ("qemu-system-x86", "ovmf"),
    "aarch64": ("qemu-system-arm", "qemu-efi-aarch64"),
}
TPM_PACKAGES = ("swtpm", "swtpm-tools")
LAYOUT_VERSION = 2  # bump when what the tree must contain changes (2: qemu-bundle, guestfs-qemu)
STATUS = "var/lib/dpkg/status"
# QEMU (>= 7.1, util/cutils.c get_relocated_path) takes every configured path (modules, data,
# helpers) below <its executable's directory>/qemu-bundle when that exists. Run by the tree's
# loader, its executable is usr/lib/<triplet>/ld-linux-*.so.*: a qemu-bundle there that is the
# tree itself keeps QEMU off the host's /usr/lib/<triplet>/qemu, whose modules of another QEMU
# build abort it ("Only modules from the same build can be loaded", as libguestfs's `-device ?`
# probe loads every module).
BUNDLE_LINK = "../../.."
# libguestfs's hypervisor (guestfs_set_hv): one program, so a script that starts the tree's QEMU
# as `command` does, from wherever the tree is (it is made elsewhere and renamed)
GUESTFS_HV = "usr/lib/dps-composer/guestfs-qemu"
_GUESTFS_HV_SCRIPT = """#!/bin/sh
# libguestfs's QEMU: the boot tools tree's, run by the tree's loader with the tree's libraries
root=$(dirname "$(readlink -f "$0")")
root=${{root%/usr/lib/dps-composer}}
lib=$root/usr/lib/{triplet}
exec "$lib/{loader}" --library-path "$lib:$root/lib/{triplet}" "$root/usr/bin/{qemu}" "$@"
"""


class BootToolsError(ComposerError):
    """The boot tools tree cannot be made or used (exit 3: the environment)."""

    exit_code = 3


@dataclass(frozen=True)
class BootTools:
    """Where boot's programs and firmware come from: a tree (``root``) or the host (None)."""

    root: Path | None = None
    versions: tuple[tuple[str, str], ...] = ()  # the tree's (package, version), sorted

    @property
    def origin(self) -> str:
        if self.root is None:
            return "host"
        wanted = dict(self.versions)
        shown = [f"{p} {wanted[p]}" for p in ("qemu-system-x86", "ovmf", "swtpm") if p in wanted]
        return f"{TOOLS_SUITE} boot tools tree {self.root.name} ({', '.join(shown)})"

    def command(self, program: str) -> list[str]:
        """The argument list that starts ``program`` (a name on the host, or in usr/bin of
        the tree, run by the tree's loader with the tree's libraries)."""
        if self.root is None:
            return [program]
        binary = self.root / "usr/bin" / program
        if not binary.is_file():
            raise BootToolsError(f"{binary}: not in the boot tools tree")
        return [str(loader(self.root)), "--library-path", library_path(self.root), str(binary)]

    def qemu_env(self) -> dict[str, str]:
        """QEMU's loadable modules (display, audio, ...) from the tree, not the host's."""
        if self.root is None:
            return {}
        return {"QEMU_MODULE_DIR": str(self.root / "usr/lib" / triplet() / "qemu")}

    def qemu_data_args(self) -> list[str]:
        """QEMU's option ROMs and BIOS files from the tree (``-L``)."""
        return [] if self.root is None else ["-L", str(self.root / "usr/share/qemu")]

    def firmware_dirs(self) -> list[Path] | None:
        """The descriptor directories to search (None: QEMU's defaults on the host)."""
        return None if self.root is None else [self.root / "usr/share/qemu/firmware"]

    def guestfs_hv(self) -> Path | None:
        """The program libguestfs starts as its QEMU (None: the host's)."""
        return None if self.root is None else self.root / GUESTFS_HV


HOST = BootTools()


def triplet() -> str:
    """The host's multiarch triplet (x86_64-linux-gnu): the tree is made for the host."""
    return f"{os.uname().machine}-linux-gnu"


def loader(root: Path) -> Path:
    """The tree's dynamic loader (ld-linux-*.so.*, in usr/lib/<triplet>)."""
    found = sorted((root / "usr/lib" / triplet()).glob("ld-linux-*.so.*"))
    if not found:
        raise BootToolsError(f"{root}: no dynamic loader in usr/lib/{triplet()}")
    return found[0]


def library_path(root: Path) -> str:
    return f"{root}/usr/lib/{triplet()}:{root}/lib/{triplet()}"


def host_arch() -> Arch:
    machine = os.uname().machine
    if machine not in ARCHES:
        raise BootToolsError(f"no boot tools tree for a {machine} host")
    return ARCHES[machine]


def boot_packages(guest: Arch) -> tuple[str, ...]:
    """The emulator and firmware for ``guest``, and swtpm (always: one tree serves every boot)."""
    if guest.name not in GUEST_PACKAGES:
        raise BootToolsError(f"no boot tools for {guest.name} guests")
    return (*GUEST_PACKAGES[guest.name], *TPM_PACKAGES)


def installed_versions(root: Path) -> tuple[tuple[str, str], ...]:
    """(package, version) of every installed package, from the tree's dpkg status file."""
    out: dict[str, str] = {}
    name = version = ""
    installed = False
    text = (root / STATUS).read_text(errors="replace")
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if name and version and installed:
                out[name] = version
            name = version = ""
            installed = False
        elif line.startswith("Package:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("Version:"):
            version = line.split(":", 1)[1].strip()
        elif line.startswith("Status:"):
            installed = line.split(":", 1)[1].split()[-1:] == ["installed"]
    return tuple(sorted(out.items()))


def _request_key(host: Arch, packages: Sequence[str]) -> str:
    spec = {"suite": TOOLS_SUITE, "arch": host.debian, "packages": list(packages)}
    return key_of({**spec, "v": LAYOUT_VERSION})


def _tree_from(pointer: Path, trees: Path) -> BootTools | None:
    try:
        data = json.loads(pointer.read_text())
        root = trees / str(data["tree"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (root / "usr/bin").is_dir() or not (root / STATUS).is_file():
        return None
    return BootTools(root, installed_versions(root))


def _pointer(trees: Path, host: Arch, packages: Sequence[str]) -> Path:
    return trees / f"boot-{TOOLS_SUITE}-{host.debian}-{_request_key(host, packages)}.json"


def find_boot_tools(cache_dir: Path, guest: Arch) -> BootTools | None:
    """The cached boot tools tree for ``guest`` images if one was made; never makes one.
    Raises BootToolsError for a host or guest architecture that has no tree."""
    trees = cache_dir / "trees"
    return _tree_from(_pointer(trees, host_arch(), boot_packages(guest)), trees)


def ensure_boot_tools(cache_dir: Path, guest: Arch) -> BootTools:
    """The cached boot tools tree for ``guest`` images, made if missing (one maker at a time;
    the others wait and take its tree). Raises BootToolsError when it cannot be made."""
    host = host_arch()
    packages = boot_packages(guest)
    trees = cache_dir / "trees"
    pointer = _pointer(trees, host, packages)
    found = _tree_from(pointer, trees)
    if found is not None:
        return found
    try:
        trees.mkdir(parents=True, exist_ok=True)
        with locks.held(trees / f".{pointer.name}.lock"):
            return _tree_from(pointer, trees) or _make(trees, pointer, host, packages, cache_dir)
    except ComposerError as err:
        raise BootToolsError(f"cannot make the boot tools tree: {err}") from None
    except OSError as err:
        raise BootToolsError(f"cannot make the boot tools tree in {trees}: {err}") from None


def _make(
    trees: Path, pointer: Path, host: Arch, packages: Sequence[str], cache_dir: Path
) -> BootTools:
    with owned_dir(trees, ".tmp-boot-") as tmp:
        target = tmp / "tree"
        mmdebstrap(
            target,
            suite=TOOLS_SUITE,
            mirror=TOOLS_MIRROR,
            arch=host,
            packages=packages,
            archive_cache=cache_dir / "archives" / f"{TOOLS_SUITE}-{host.debian}",
        )
        complete(target)
        versions = installed_versions(target)
        layout = {"versions": dict(versions), "layout": LAYOUT_VERSION}
        final = trees / f"boot-{TOOLS_SUITE}-{host.debian}-{key_of(layout)}"
        if not final.exists():  # the same versions made before: that tree serves
            sync_filesystem(target)
            target.rename(final)
            fsync_dir(trees)
    atomic_write(pointer, json.dumps({"tree": final.name}) + "\n")
    return BootTools(final, installed_versions(final))


def complete(root: Path) -> None:
    """What the tree holds besides its packages: QEMU's qemu-bundle (the tree itself) and
    libguestfs's QEMU program (see BUNDLE_LINK and GUESTFS_HV)."""
    (root / "usr/lib" / triplet() / "qemu-bundle").symlink_to(BUNDLE_LINK)
    hv = root / GUESTFS_HV
    hv.parent.mkdir(parents=True, exist_ok=True)
    hv.write_text(
        _GUESTFS_HV_SCRIPT.format(
            triplet=triplet(), loader=loader(root).name, qemu=f"qemu-system-{os.uname().machine}"
        )
    )
    hv.chmod(0o755)
