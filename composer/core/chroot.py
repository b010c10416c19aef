"""Run a command inside a tree, with /proc, /sys, /dev and extra binds in a private mount
namespace: nothing leaks into the host's mounts, and everything is gone when it exits."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from composer.core import tools


def run_in(
    tree: Path,
    argv: Sequence[str],
    *,
    binds: Sequence[tuple[Path, str]] = (),
    env: dict[str, str] | None = None,
) -> None:
    """Run ``argv`` chrooted into ``tree`` (its output logged: composer/core/tools.py);
    ``binds`` are (host path, path inside) pairs."""
    command, full_env = _unshared(tree, argv, binds, env)
    tools.run(command, env=full_env)


def output_in(
    tree: Path,
    argv: Sequence[str],
    *,
    binds: Sequence[tuple[Path, str]] = (),
    env: dict[str, str] | None = None,
) -> str:
    """:func:`run_in`, returning the command's standard output as text (not logged)."""
    command, full_env = _unshared(tree, argv, binds, env)
    return tools.output(command, env=full_env)


def _unshared(
    tree: Path,
    argv: Sequence[str],
    binds: Sequence[tuple[Path, str]],
    env: dict[str, str] | None,
) -> tuple[list[str], dict[str, str]]:
    """The unshare command line that mounts, binds and chroots, and its environment."""
    root = shlex.quote(str(tree.resolve()))
    mounts = [
        f"mount -t proc proc {root}/proc",
        f"mount --rbind /sys {root}/sys",
        f"mount --rbind /dev {root}/dev",
    ]
    for host, inside in binds:
        dest = f"{root}/{inside.lstrip('/')}"
        mounts.append(f"mkdir -p {shlex.quote(dest)}")
        mounts.append(f"mount --bind {shlex.quote(str(host.resolve()))} {shlex.quote(dest)}")
    script = " && ".join(mounts) + " && exec chroot " + root + " " + shlex.join(argv)
    base_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
    base_env.update(env or {})
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--fork",
        "sh",
        "-c",
        script,
    ], base_env
