"""Local package repositories: an apt flat repository (Packages, Release) and an RPM
repository (repodata/) in one directory, used unsigned ([trusted=yes], gpgcheck=0)."""

from __future__ import annotations

import gzip
from pathlib import Path

from composer.core import tools
from composer.core.files import atomic_write


def index_apt(repo: Path) -> None:
    """Packages, Packages.gz and Release for every .deb in ``repo`` (a flat repository)."""
    packages = tools.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=repo, capture=True
    ).stdout
    atomic_write(repo / "Packages", packages)
    atomic_write(repo / "Packages.gz", gzip.compress(packages, mtime=0))
    release = tools.run(
        [
            "apt-ftparchive",
            "-oAPT::FTPArchive::Release::Origin=dps-composer",
            "-oAPT::FTPArchive::Release::Label=uki-virt",
            "release",
            ".",
        ],
        cwd=repo,
        capture=True,
    ).stdout
    # apt-ftparchive lists the Release file itself if one exists: drop those lines
    kept = [
        ln for ln in release.decode().splitlines(keepends=True) if not ln.endswith(" Release\n")
    ]
    atomic_write(repo / "Release", "".join(kept).encode())


def index_rpm(repo: Path) -> None:
    """repodata/ for every .rpm in ``repo`` (createrepo_c)."""
    tools.run(["createrepo_c", "--quiet", "--no-database", "--update", str(repo)])
