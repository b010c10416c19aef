"""Target distributions: how to fetch packages and what every image of them needs."""

from __future__ import annotations

from dataclasses import dataclass

from composer.spec.arch import Arch

# The generic VM UKI as a package: the composer's own uki-virt repository for Debian
# (composer/uki_virt/), the distribution's own kernel-uki-virt for Fedora and CentOS Stream.
UKI_VIRT = "uki-virt"
KERNEL_UKI_VIRT = "kernel-uki-virt"


@dataclass(frozen=True)
class Distro:
    id: str  # blueprint spelling: debian-13
    family: str  # package backend: "apt" (mmdebstrap) or "dnf" (dnf --installroot)
    os_id: str  # os-release ID: names the UKI file
    suite: str  # apt: the suite; dnf: the release version ($releasever)
    mirror: str  # apt: the archive; dnf: unused (composer/rootfs/dnf.py has the defaults)

    def base_packages(self, arch: Arch) -> tuple[str, ...]:
        """What every image needs to boot from a UKI and find its root by type."""
        if self.family == "dnf":
            # the distribution's own generic VM UKI; never kernel-core + grub2 unless listed
            return ("systemd", "systemd-udev", "dbus-broker", "tpm2-tools", KERNEL_UKI_VIRT)
        return (
            "systemd",
            "systemd-sysv",
            "udev",
            "dbus",
            # libtss2: systemd-pcrphase measures the boot phases into PCR 11 only with it
            "tpm2-tools",
            f"linux-image-{arch.debian}",
        )


DISTROS: dict[str, Distro] = {
    "debian-13": Distro("debian-13", "apt", "debian", "trixie", "http://deb.debian.org/debian"),
    **{f"fedora-{v}": Distro(f"fedora-{v}", "dnf", "fedora", str(v), "") for v in (40, 41, 42, 43)},
    **{
        f"centos-stream-{v}": Distro(f"centos-stream-{v}", "dnf", "centos", str(v), "")
        for v in (9, 10)
    },
}


def get_distro(distro_id: str) -> Distro:
    return DISTROS[distro_id]
