"""Make composer/data/targets/*.json (composer/target/facts.py) from the real packages.

Debian: the base system's package set is resolved against the archive as a build resolves it
(composer/rootfs/pkgset.py: mmdebstrap's minbase plus what every image installs), the .debs
are downloaded into the shared package cache and read: base-passwd's passwd.master and
group.master, every sysusers.d file and every user or group a maintainer script makes
(composer/rootfs/pkgfacts.py); the zone files of tzdata and tzdata-legacy; glibc's list of supported
locales (locales: /usr/share/i18n/SUPPORTED).

Fedora: its mirrors are not reachable from the machines this was written on, so its users and
groups are written down from their upstream sources (cited below). Its time zones and locales
come from the same upstream data as Debian's (IANA tz, with the ``backward`` names that Fedora's
tzdata keeps in the one package; glibc's localedata/SUPPORTED), read from the Debian packages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from composer.rootfs import pkgset, versions
from composer.rootfs.pkgfacts import deb_paths, deb_text, facts
from composer.spec.arch import get_arch
from composer.target.distros import get_distro

# Fedora's `setup` package (https://pagure.io/setup, files "passwd" and "group", installed as
# /etc/passwd and /etc/group).
FEDORA_SETUP_USERS = ("root", "bin", "daemon", "adm", "lp", "sync", "shutdown", "halt", "mail",
                      "operator", "games", "ftp", "nobody")  # fmt: skip
FEDORA_SETUP_GROUPS = ("root", "bin", "daemon", "sys", "adm", "tty", "disk", "lp", "mem", "kmem",
                       "wheel", "cdrom", "mail", "man", "dialout", "floppy", "games", "tape",
                       "video", "ftp", "lock", "audio", "users", "nobody")  # fmt: skip
# What the rest of a Fedora image's base set creates with sysusers.d files: systemd's
# sysusers.d/basic.conf.in, udev.conf.in, systemd-journal.conf, systemd-coredump.conf.in,
# systemd-timesync.conf.in (https://github.com/systemd/systemd; Fedora's systemd-udev ships
# timesyncd), dbus-broker's dbus user (Fedora dbus-common: "u dbus 81"), tpm2-tss's tss user.
FEDORA_SYSUSERS_USERS = ("systemd-coredump", "systemd-timesync", "dbus", "tss")
FEDORA_SYSUSERS_GROUPS = ("utmp", "input", "kvm", "render", "sgx", "clock", "systemd-journal",
                          "systemd-coredump", "systemd-timesync", "dbus", "tss")  # fmt: skip

_ZONE = re.compile(r"^/usr/share/zoneinfo/([A-Z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*)$")
_NOT_ZONES = {"Factory", "SECURITY"}


def zones_of(paths: list[str]) -> list[str]:
    """Zone names among the paths a tzdata package installs."""
    out = []
    for path in paths:
        m = _ZONE.match(path)
        if m and not m.group(1).startswith(("posix/", "right/")) and m.group(1) not in _NOT_ZONES:
            out.append(m.group(1))
    return sorted(set(out))


def locales_of(supported: str) -> list[str]:
    """Locale names of glibc's SUPPORTED file ("en_US.UTF-8 UTF-8" lines)."""
    return sorted({ln.split()[0] for ln in supported.splitlines() if ln.strip()
                   and not ln.startswith("#")})  # fmt: skip


def master_names(text: str) -> list[str]:
    return [ln.split(":", 1)[0] for ln in text.splitlines() if ln and not ln.startswith("#")]


def debian(cache: Path) -> dict[str, Any]:
    distro, arch = get_distro("debian-13"), get_arch("x86_64")
    state = pkgset.state_dir(cache, distro.suite, arch)
    versions.archive_versions(
        ["base-passwd"], suite=distro.suite, mirror=distro.mirror, arch=arch, state=state
    )
    wanted = [*pkgset.minbase(state), *distro.base_packages(arch), "locales", "tzdata-legacy"]
    res = pkgset.simulate(wanted, state=state, arch=arch)
    if not res.packages:
        raise SystemExit(f"cannot resolve the base set: {res.problem}")
    archives = cache / "archives" / f"{distro.suite}-{arch.debian}"
    debs = dict(zip((p.name for p in res.packages),
                    pkgset.download(res.packages, state=state, arch=arch, archives=archives), strict=True))  # fmt: skip
    users: set[str] = set()
    groups: set[str] = set()
    memo = cache / "package-facts"
    for name, deb in debs.items():
        if name in ("locales", "tzdata-legacy"):
            continue  # read for their data, not part of every image
        f = facts(deb, memo)
        users.update(f.users)
        groups.update(f.groups)
    users.update(
        master_names(deb_text(debs["base-passwd"], "/usr/share/base-passwd/passwd.master"))
    )
    groups.update(
        master_names(deb_text(debs["base-passwd"], "/usr/share/base-passwd/group.master"))
    )
    return {
        "distro": "debian-13",
        "made_from": {n: p.version for n, p in ((p.name, p) for p in res.packages)
                      if n in ("base-passwd", "systemd", "tzdata", "tzdata-legacy", "locales")},
        "users": sorted(users),
        "groups": sorted(groups),
        "zones": {
            "tzdata": zones_of(deb_paths(debs["tzdata"])),
            "tzdata-legacy": zones_of(deb_paths(debs["tzdata-legacy"])),
        },
        "locales": locales_of(deb_text(debs["locales"], "/usr/share/i18n/SUPPORTED")),
    }  # fmt: skip


def fedora(debian_data: dict[str, Any]) -> dict[str, Any]:
    zones = sorted({z for names in debian_data["zones"].values() for z in names})
    return {
        "distro": "fedora",
        "made_from": {"setup": "https://pagure.io/setup (passwd, group)",
                      "systemd": "https://github.com/systemd/systemd sysusers.d",
                      "tz and locales": "the upstream data of Debian's packages: "
                      + ", ".join(f"{k} {v}" for k, v in debian_data["made_from"].items())},
        "users": sorted({*FEDORA_SETUP_USERS, *FEDORA_SYSUSERS_USERS}),
        "groups": sorted({*FEDORA_SETUP_GROUPS, *FEDORA_SYSUSERS_GROUPS}),
        "zones": {"tzdata": zones},
        "locales": debian_data["locales"],
    }  # fmt: skip


def write(directory: Path, cache: Path) -> list[Path]:
    deb = debian(cache)
    out = []
    for data in (deb, fedora(deb)):
        path = directory / f"{data['distro']}.json"
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        out.append(path)
    return out
