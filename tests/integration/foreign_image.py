"""A "foreign" image for the inspect/boot tests: made by systemd-repart (not by the composer's
disk code) from an mmdebstrap trixie tree with cloud-init, systemd-boot and a UKI. Composer
pieces make the tree, the UKI and the ESP contents; the partition table, partition UUIDs,
labels and the ext4 root are systemd-repart's. No manifest.json, no check unit."""

from __future__ import annotations

import shutil
from pathlib import Path

from composer.build.bootchain.systemd_boot import stage_systemd_boot
from composer.build.fs.fs import make_vfat
from composer.core.chroot import run_in
from composer.rootfs import apt
from composer.spec.arch import get_arch
from composer.toolchain.toolstree import ensure_tools_tree
from composer.toolchain.ukify import build_uki

PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "tpm2-tools",
    "linux-image-amd64",
    "cloud-init",
    # what cloud-init's default modules use on a real cloud image (resizefs, ssh host keys,
    # network info): without them its stages end in errors and its units fail
    "e2fsprogs",
    "openssh-server",
    "iproute2",
)
ESP_SIZE = 256 * 1024 * 1024
DEFINITIONS = {
    "00-esp.conf": "[Partition]\nType=esp\nCopyBlocks=/esp.img\n",
    "10-root.conf": ("[Partition]\nType=root\nFormat=ext4\nCopyFiles=/rootfs:/\nSizeMinBytes=2G\n"),
}


def build_repart_image(cache: Path, work: Path, dest: Path) -> Path:
    """Build the image into ``dest`` (a raw file); ``work`` holds the trees."""
    arch = get_arch("x86_64")
    tools = ensure_tools_tree(cache, arch)
    root = work / "root"
    apt.mmdebstrap(
        root,
        suite="trixie",
        mirror="http://deb.debian.org/debian",
        arch=arch,
        packages=PACKAGES,
        archive_cache=cache / "archives" / f"trixie-{arch.debian}",
    )
    (root / "etc/hostname").write_text("foreign\n")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    kver = apt.kernel_version(root)
    uki = build_uki(tools, root, kver, "console=tty0 console=ttyS0", arch.efi, work / "uki")
    esp = work / "esp"
    stage_systemd_boot(esp, tools, arch.efi, 0)
    shutil.copyfile(uki.path, esp / f"EFI/Linux/debian-{kver}.efi")
    repart_root = work / "repart-root"
    repart_root.mkdir()
    make_vfat(repart_root / "esp.img", ESP_SIZE, esp, "0E5F0E5F", "ESP")
    defs = work / "repart.d"
    defs.mkdir()
    for name, text in DEFINITIONS.items():
        (defs / name).write_text(text)
    out = work / "out"
    out.mkdir()
    run_in(
        tools,
        [
            "systemd-repart",
            "--empty=create",
            "--size=auto",
            "--offline=yes",
            "--dry-run=no",
            "--no-pager",
            "--seed=6a1c2f3e-0d4b-4f5e-9a8b-7c6d5e4f3a2b",
            "--definitions=/run/repart.d",
            "--root=/run/repart-root",
            "/run/out/foreign.raw",
        ],
        binds=[
            (defs, "/run/repart.d"),
            (repart_root, "/run/repart-root"),
            (root, "/run/repart-root/rootfs"),
            (out, "/run/out"),
        ],
    )
    shutil.move(out / "foreign.raw", dest)
    return dest
