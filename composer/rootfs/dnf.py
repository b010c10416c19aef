"""RPM root trees with dnf --installroot (Debian's dnf 4): Fedora and CentOS Stream targets.

The host's repository configuration is never read: a private dnf.conf names exactly the
blueprint's ``[[customizations.repositories]]`` (or the distribution's default repositories).
Downloaded packages are kept in a cache between builds. The rpm database goes where the target
distribution keeps it, through a private ~/.rpmmacros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from composer.blueprint.repositories import Repository
from composer.blueprint.values import control_char
from composer.core import tools
from composer.core.errors import ComposerError
from composer.core.workdir import scratch_dir, work_parent
from composer.spec.arch import Arch
from composer.target.distros import Distro

FEDORA_METALINK = (
    "https://mirrors.fedoraproject.org/metalink?repo={repo}-$releasever&arch=$basearch"
)
CENTOS_METALINK = (
    "https://mirrors.centos.org/metalink?repo=centos-{repo}-$releasever-stream&arch=$basearch"
)
# Where the target's rpm keeps its database (Fedora moved it in 36, CentOS Stream in 10).
DBPATH_SYSIMAGE = "/usr/lib/sysimage/rpm"
DBPATH_VAR = "/var/lib/rpm"


class DnfError(ComposerError):
    """A dnf target that cannot be built as asked."""


def default_repositories(distro: Distro) -> tuple[Repository, ...]:
    """The distribution's own repositories, as its installer configures them."""
    if distro.os_id == "fedora":
        names, pattern = ("fedora", "updates"), FEDORA_METALINK
    else:
        names, pattern = ("baseos", "appstream"), CENTOS_METALINK
    key = f"file:///etc/pki/rpm-gpg/RPM-GPG-KEY-{distro.os_id}-{distro.suite}-primary"
    return tuple(
        Repository(id=f"{distro.id}-{n}", metalink=pattern.format(repo=n), gpgkeys=(key,))
        for n in names
    )


def dbpath(distro: Distro) -> str:
    if distro.os_id == "centos" and distro.suite.split(".")[0] == "9":
        return DBPATH_VAR
    return DBPATH_SYSIMAGE


def dnf_conf(
    repos: Sequence[Repository],
    cachedir: Path,
    inline_keys: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A dnf.conf that reads no repository but these (``inline_keys``: repository id ->
    file:// URLs of its armored keys, written out)."""
    lines = [
        "[main]",
        "reposdir=",
        f"cachedir={cachedir}",
        "keepcache=1",
        "install_weak_deps=0",
        "tsflags=nodocs",
        "best=1",
        "skip_if_unavailable=0",
        "",
    ]
    keys = inline_keys or {}
    sections = [(r.id, r.dnf_options(keys.get(r.id, ()))) for r in repos if r.enabled]
    for repo_id, opts in sections:
        lines.append(f"[{repo_id}]")
        lines += [f"{k}={v}" for k, v in opts.items()]
        lines.append("")
    text = "\n".join(lines)
    if any(control_char(line) for line in text.split("\n")):  # the models refuse them first
        raise DnfError("dnf.conf: a value holds a control character")
    return text


def write_inline_keys(repos: Sequence[Repository], directory: Path) -> dict[str, list[str]]:
    """The armored keys blueprints give inline, as files dnf can read: id -> file:// URLs."""
    found: dict[str, list[str]] = {}
    for r in repos:
        for i, key in enumerate(r.inline_keys):
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{r.id}-{i}.asc"
            path.write_text(key.strip() + "\n")
            found.setdefault(r.id, []).append(f"file://{path.resolve()}")
    return found


def install_tree(
    target: Path,
    *,
    distro: Distro,
    arch: Arch,
    packages: Sequence[str],
    repositories: Sequence[Repository],
    cache: Path,
    epoch: int | None = None,
) -> None:
    """Create ``target`` (must not exist yet) with ``packages`` and their dependencies
    installed by dnf; their scriptlets run chrooted into ``target`` (a shell must come
    with the packages)."""
    if arch.name != tools.output(["uname", "-m"]).strip():
        raise DnfError(f"dnf targets are built for the host's architecture only, not {arch.name}")
    repos = tuple(repositories) or default_repositories(distro)
    target.mkdir(parents=True)
    cachedir = cache / "dnf" / f"{distro.id}-{arch.name}"
    cachedir.mkdir(parents=True, exist_ok=True)
    with scratch_dir("dnf-conf", work_parent()) as tmp:
        conf = tmp / "dnf.conf"
        inline = write_inline_keys(repos, tmp / "keys")
        conf.write_text(dnf_conf(repos, cachedir.resolve(), inline))
        (tmp / ".rpmmacros").write_text(f"%_dbpath {dbpath(distro)}\n")
        tools.run(
            [
                "dnf",
                "-y",
                "-q",
                f"--config={conf}",
                f"--installroot={target.resolve()}",
                f"--releasever={distro.suite}",
                "--setopt=install_weak_deps=False",
                "install",
                "--",  # package names are checked never to start with '-'; belt and braces
                *packages,
            ],
            env={"HOME": str(tmp), "LC_ALL": "C.UTF-8"}
            | ({"SOURCE_DATE_EPOCH": str(epoch)} if epoch is not None else {}),
        )


def installed_packages(tree: Path, distro: Distro) -> dict[str, str]:
    """Package name -> version-release of every package installed in ``tree``."""
    text = tools.output(
        [
            "rpm",
            f"--root={tree.resolve()}",
            f"--dbpath={dbpath(distro)}",
            "-qa",
            "--qf",
            "%{NAME}\t%{VERSION}-%{RELEASE}\n",
        ]
    )
    pairs = (line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return dict(sorted((name, version) for name, version in pairs))
