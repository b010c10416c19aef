"""Target distributions: how to fetch packages and what every image of them needs."""

from __future__ import annotations

from dataclasses import dataclass

from composer.arch import Arch


@dataclass(frozen=True)
class Distro:
    id: str  # blueprint spelling: debian-13
    family: str  # package backend: "apt"
    os_id: str  # os-release ID: names the UKI file
    suite: str
    mirror: str

    def base_packages(self, arch: Arch) -> tuple[str, ...]:
        """What every image needs to boot from a UKI and find its root by type."""
        return (
            "systemd",
            "systemd-sysv",
            "udev",
            "dbus",
            f"linux-image-{arch.debian}",
        )


DISTROS: dict[str, Distro] = {
    "debian-13": Distro("debian-13", "apt", "debian", "trixie", "http://deb.debian.org/debian"),
}


def get_distro(distro_id: str) -> Distro:
    return DISTROS[distro_id]
