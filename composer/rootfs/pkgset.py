"""The image's whole package set as the archive resolves it now (apt, without installing):
the names apt would install and the .deb files, downloaded into the shared package cache that
mmdebstrap takes them from later (work the build does anyway).

The package set is what mmdebstrap's minbase variant installs (Essential: yes and Priority:
required packages, and apt) plus the plan's packages, resolved by ``apt-get --simulate``
against the private index of composer/rootfs/versions.py with an empty package database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from composer.core import progress, tools
from composer.core.errors import HostError, ToolError
from composer.core.log import note
from composer.core.workdir import owned_dir
from composer.rootfs import versions
from composer.spec.arch import Arch

LOG = logging.getLogger(__name__)

_INST = re.compile(
    r"^Inst (?P<name>\S+) (?:\[[^\]]*\] )?\((?P<version>\S+) .*\[(?P<arch>[^\]]+)\]\)"
)


@dataclass(frozen=True)
class ResolvedPackage:
    name: str
    version: str
    arch: str

    @property
    def file_name(self) -> str:
        return deb_file_name(self.name, self.version, self.arch)


def deb_file_name(name: str, version: str, arch: str) -> str:
    """The pool file name apt gives a package (an epoch's ':' spelled %3a)."""
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


@dataclass(frozen=True)
class Resolution:
    packages: tuple[ResolvedPackage, ...]  # empty when apt could not resolve
    problem: str = ""  # apt's reason when it could not


def state_dir(cache: Path, suite: str, arch: Arch) -> Path:
    return cache / "apt-index" / f"{suite}-{arch.debian}"


def minbase(state: Path) -> list[str]:
    """Essential and Priority: required packages of the index, and apt (mmdebstrap's
    minbase)."""
    names = {"apt"}
    for lists in sorted((state / "lists").glob("*_Packages*")):
        text = tools.output(["/usr/lib/apt/apt-helper", "cat-file", lists])
        for stanza in text.split("\n\n"):
            if "\nPriority: required" not in stanza and "\nEssential: yes" not in stanza:
                continue  # most of the 70000 stanzas: not split into fields (0.4 s for trixie)
            fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line[:40])
            if fields.get("Priority") == "required" or fields.get("Essential") == "yes":
                names.add(fields.get("Package", "apt"))
    return sorted(names)


def parse_simulation(text: str) -> list[ResolvedPackage]:
    """``apt-get --simulate install`` output -> the packages it would install."""
    out = []
    for line in text.splitlines():
        m = _INST.match(line)
        if m:
            out.append(ResolvedPackage(m.group("name"), m.group("version"), m.group("arch")))
    return out


def simulate(specs: Sequence[str], *, state: Path, arch: Arch) -> Resolution:
    """What ``apt-get install specs`` would install on an empty system (``specs``: names or
    name=version); the index in ``state`` must be current (versions.archive_versions)."""
    opts = versions._apt_options(state, arch)  # its status file is empty: nothing installed
    try:
        text = tools.output(
            [
                "apt-get",
                *opts,
                "-q",
                "--simulate",
                "--no-install-recommends",
                "install",
                "--",
                *specs,
            ],  # fmt: skip
        )
    except ToolError as exc:
        lines = [ln for ln in exc.stderr_tail.splitlines() if ln.startswith("E:")]
        return Resolution((), "; ".join(ln.removeprefix("E: ") for ln in lines) or str(exc))
    note(LOG, f"resolved {len(specs)} names: apt would install")
    LOG.info("%s", text.rstrip("\n"))
    return Resolution(tuple(parse_simulation(text)))


@dataclass(frozen=True)
class Uri:
    """One line of ``apt-get --print-uris``: where a file comes from, its name and size."""

    url: str
    file_name: str
    size: int


_URI = re.compile(r"^'(?P<url>[^']+)' (?P<name>\S+) (?P<size>\d+) ")


def parse_print_uris(text: str) -> list[Uri]:
    found = (_URI.match(line) for line in text.splitlines())
    return [Uri(m["url"], m["name"], int(m["size"])) for m in found if m]


def _count(n: int) -> str:
    return f"{n} package" if n == 1 else f"{n} packages"


def download(
    packages: Sequence[ResolvedPackage], *, state: Path, arch: Arch, archives: Path
) -> list[Path]:
    """The .deb files of ``packages`` in the shared package cache ``archives`` (those missing
    are downloaded with ``apt-get download`` from the index in ``state``)."""
    archives.mkdir(parents=True, exist_ok=True)
    missing = [f"{p.name}={p.version}" for p in packages if not (archives / p.file_name).exists()]
    if missing:  # downloaded aside, then renamed in: no build ever sees half a .deb
        apt = ["apt-get", *versions._apt_options(state, arch), "-q"]
        with versions.index_locked(state), owned_dir(archives, ".tmp-download-") as tmp:
            uris = tools.output([*apt, "--print-uris", "download", "--", *missing], cwd=tmp)
            size = sum(u.size for u in parse_print_uris(uris))
            shown = progress.AptDownload(f"downloading {_count(len(missing))}", size)
            tools.run(
                [*apt, "-oAPT::Status-Fd=1", "download", "--", *missing],
                cwd=tmp, on_line=shown.line,
            )  # fmt: skip
            shown.finish()
            for deb in tmp.glob("*.deb"):
                deb.replace(archives / deb.name)
    paths = [archives / p.file_name for p in packages]
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        raise HostError("apt-get download did not produce " + ", ".join(absent))
    return paths
