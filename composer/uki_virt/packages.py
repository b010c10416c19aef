"""The uki-virt packages of one kernel: ``uki-virt-<kver>`` (install-only: the kernel release
is in the name, so two kernels keep two entries), the metapackage ``uki-virt`` depending on
it, and the Fedora-style ``kernel-uki-virt`` RPM. Each holds
/usr/lib/modules/<kver>/vmlinuz-virt.efi; their scripts copy it to the ESP on install and
remove that copy on removal (composer/data/uki-virt/esp.sh)."""

from __future__ import annotations

import shutil
from pathlib import Path

from composer import DATA
from composer.spec.arch import Arch
from composer.target.distros import KERNEL_UKI_VIRT, UKI_VIRT
from composer.uki_virt.debpkg import build_deb
from composer.uki_virt.kernel import KernelPackage
from composer.uki_virt.rpmpkg import RpmSpec, build_rpm

HOMEPAGE = "https://github.com/dps-composer/dps-composer"
MAINTAINER = "dps-composer <uki-virt@dps-composer.invalid>"
DESCRIPTION = (
    "generic virtual-machine unified kernel image\n"
    "A UKI (kernel, generic initrd with virtio/Hyper-V/Xen drivers, command line\n"
    "console=tty0 console=ttyS0) built by dps-composer from the distribution's own kernel.\n"
    "It is copied to the ESP's EFI/Linux/ on installation and removed from there on removal.\n"
    "It does not replace the kernel package, which provides the modules."
)


def esp_functions(kver: str) -> str:
    return (DATA / "uki-virt/esp.sh").read_text().replace("@KVER@", kver)


def deb_scripts(kver: str) -> dict[str, str]:
    """postinst copies the UKI to the ESP on configure; postrm removes it on remove/purge."""
    lib = esp_functions(kver)
    return {
        "postinst": f'#!/bin/sh\nset -e\n{lib}\ncase "$1" in\n  configure) uki_virt_install ;;\nesac\nexit 0\n',
        "postrm": f'#!/bin/sh\nset -e\n{lib}\ncase "$1" in\n  remove|purge) uki_virt_remove ;;\nesac\nexit 0\n',
    }


def rpm_scripts(kver: str) -> dict[str, str]:
    """Fedora's shape: %posttrans installs, %preun (this kernel's package going) removes."""
    lib = esp_functions(kver)
    return {"posttrans": f"{lib}\nuki_virt_install\n", "preun": f"{lib}\nuki_virt_remove\n"}


def stage(uki: Path, kver: str, dest: Path) -> Path:
    """A package tree with the UKI at usr/lib/modules/<kver>/vmlinuz-virt.efi."""
    shutil.rmtree(dest, ignore_errors=True)
    target = dest / "usr/lib/modules" / kver / "vmlinuz-virt.efi"
    target.parent.mkdir(parents=True)
    shutil.copyfile(uki, target)
    target.chmod(0o644)
    return dest


def rpm_spec(kver: str, version: str, arch: str, requires: tuple[str, ...] = ()) -> RpmSpec:
    """kernel-uki-virt for ``kver``; ``version`` is the Debian (or upstream-release) version."""
    upstream, _, release = version.split(":", 1)[-1].rpartition("-")
    return RpmSpec(
        name=KERNEL_UKI_VIRT,
        version=(upstream or release).replace("-", "_"),
        release=(release if upstream else "0") + ".dps",
        summary="generic virtual-machine unified kernel image",
        description=DESCRIPTION.split("\n", 1)[1],
        arch=arch,
        requires=requires,
        provides=("installonlypkg(kernel)", f"{KERNEL_UKI_VIRT}-{kver}"),
        scripts=rpm_scripts(kver),
        ghosts=(),
    )


def write_packages(
    uki: Path, pkg: KernelPackage, arch: Arch, out: Path, work: Path, epoch: int
) -> list[Path]:
    """uki-virt-<kver>, uki-virt and kernel-uki-virt for ``uki`` in ``out``."""
    name = f"{UKI_VIRT}-{pkg.kver}"
    main = build_deb(
        stage(uki, pkg.kver, work / "main"),
        {
            "Package": name,
            "Version": pkg.version,
            "Architecture": arch.debian,
            "Maintainer": MAINTAINER,
            "Depends": f"{pkg.name} (= {pkg.version})",
            "Section": "kernel",
            "Priority": "optional",
            "Homepage": HOMEPAGE,
            "Description": f"{DESCRIPTION.replace('image', f'image for Linux {pkg.kver}', 1)}",
        },
        deb_scripts(pkg.kver),
        out,
        epoch=epoch,
    )
    meta_tree = work / "meta"
    shutil.rmtree(meta_tree, ignore_errors=True)
    meta_tree.mkdir(parents=True)
    meta = build_deb(
        meta_tree,
        {
            "Package": UKI_VIRT,
            "Version": pkg.version,
            "Architecture": arch.debian,
            "Maintainer": MAINTAINER,
            "Depends": f"{name} (= {pkg.version})",
            "Section": "kernel",
            "Priority": "optional",
            "Homepage": HOMEPAGE,
            "Description": "generic virtual-machine unified kernel image (latest kernel)\n"
            f"Depends on the newest {UKI_VIRT}-<kernel release> package.",
        },
        {},
        out,
        epoch=epoch,
    )
    rpm = build_rpm(
        stage(uki, pkg.kver, work / "rpm"),
        rpm_spec(pkg.kver, pkg.version, arch.name),
        out,
        epoch=epoch,
    )
    return [main, meta, rpm]
