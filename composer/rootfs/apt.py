"""Debian root trees with mmdebstrap; downloaded .debs kept in a cache between builds."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from composer.core import progress, tools
from composer.core.workdir import owned_dir
from composer.spec.arch import Arch


def mmdebstrap(
    target: Path,
    *,
    suite: str,
    mirror: str,
    arch: Arch,
    packages: Sequence[str],
    archive_cache: Path,
    variant: str = "minbase",
    epoch: int | None = None,
    index: Path | None = None,
) -> None:
    """Create ``target`` (must not exist yet) as a root tree with ``packages`` installed.

    The kernel's own initrd is skipped (INITRD=No): the image boots a UKI whose initrd is
    built separately, generic and not host-only. ``index``: apt's list files of the same
    sources, fetched and verified by the composer's own `apt-get update` (package-check):
    put into the tree before mmdebstrap's update, which then sees an index already there and
    skips (mmdebstrap's ``run_update``), so the tree is installed from the very index its
    packages were resolved with, and the archive is not asked twice.
    """
    archive_cache.mkdir(parents=True, exist_ok=True)
    with owned_dir(archive_cache, ".tmp-sync-") as sync:
        argv = _mmdebstrap_argv(variant, arch, archive_cache, sync)
        if index is not None:
            argv.append(f"--setup-hook={_index_in(index.resolve())}")
        if packages:
            argv.append("--include=" + ",".join(packages))
        argv += [suite, str(target), mirror]
        env = {"INITRD": "No", "LC_ALL": "C.UTF-8", "PATH": tools.SYSTEM_PATH}
        if epoch is not None:  # mmdebstrap then makes the tree reproducible (shadow dates…)
            env["SOURCE_DATE_EPOCH"] = str(epoch)
        tools.run(argv, env=env, on_line=progress.phase_lines("I: ", "..."))


def _index_in(index: Path) -> str:
    """A setup hook: the list files in ``index`` copied into the tree's apt lists, and apt's
    caches made from them (with mmdebstrap's own apt configuration)."""
    i = shlex.quote(str(index))
    return (
        'mkdir -p "$1/var/lib/apt/lists/partial" "$1/var/lib/apt/lists/auxfiles" '
        '"$1/var/cache/apt" && '
        f'find {i} -maxdepth 1 -type f -exec cp -t "$1/var/lib/apt/lists/" {{}} + && '
        'touch "$1/var/lib/apt/lists/lock" && '
        'APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-cache gencaches'
    )


def _archive_sync_out(cache: Path, sync: Path) -> str:
    """A customize hook: the .debs this run downloaded into the shared archive cache, each
    copied aside into ``sync`` (this run's locked temporary), synced, and renamed in, so that
    another build copying from the cache never takes half a .deb; then out of the tree."""
    c, s = shlex.quote(str(cache)), shlex.quote(str(sync))
    return (
        'for f in "$1"/var/cache/apt/archives/*.deb; do [ -e "$f" ] || continue; '
        f'n=${{f##*/}}; [ -e {c}/"$n" ] && continue; '
        f'cp "$f" {s}/"$n" && sync {s}/"$n" && mv -f {s}/"$n" {c}/"$n" || exit 1; done; '
        'rm -f "$1"/var/cache/apt/archives/*.deb'
    )


def _mmdebstrap_argv(variant: str, arch: Arch, archive_cache: Path, sync: Path) -> list[str]:
    cache = str(archive_cache.resolve())
    argv = [
        # its own mount namespace: the /proc, /sys and /dev mounts mmdebstrap makes in the
        # tree vanish with it, even when the build is killed
        "unshare",
        "--mount",
        "--propagation=private",
        tools.which("mmdebstrap"),  # found on the user's PATH: it runs with SYSTEM_PATH
        f"--variant={variant}",
        "--mode=root",
        f"--architectures={arch.debian}",
        '--aptopt=APT::Install-Recommends "false"',
        '--aptopt=Acquire::Retries "3"',
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        "--skip=download/empty",
        f'--setup-hook=mkdir -p "$1/var/cache/apt/archives" && '
        f"find {cache} -maxdepth 1 -name '*.deb' -exec cp -t \"$1/var/cache/apt/archives/\" {{}} +",
        f"--customize-hook={_archive_sync_out(archive_cache.resolve(), sync.resolve())}",
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/log/apt/* '
        '"$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old',
    ]
    return argv


def installed_packages(tree: Path) -> dict[str, str]:
    """Package name -> version of every package installed in ``tree``."""
    text = tools.output(
        [
            "dpkg-query",
            f"--admindir={tree}/var/lib/dpkg",
            "-W",
            "-f=${db:Status-Abbrev}\t${Package}\t${Version}\n",
        ]
    )
    result: dict[str, str] = {}
    for line in text.splitlines():
        status, name, version = line.split("\t")
        if status.startswith("ii"):
            result[name] = version
    return dict(sorted(result.items()))


def kernel_version(tree: Path) -> str:
    """The one kernel installed in ``tree`` (its /usr/lib/modules directory name)."""
    moddir = tree / "usr/lib/modules"
    versions = sorted(p.name for p in moddir.iterdir() if (p / "modules.dep").exists())
    if not versions:
        raise FileNotFoundError(f"no kernel modules in {moddir}: is a linux-image package listed?")
    return versions[-1]
