"""Run a command inside a tree, with /proc, /sys, /dev and extra binds in a private mount
namespace: nothing leaks into the host's mounts, and everything is gone when it exits.

A bind is writable only where the command writes its results (``binds``); what it only reads
(key directories, the image tree a UKI is made from) is bound read-only (``ro_binds``): a bind
mount remounted ``MS_BIND|MS_REMOUNT|MS_RDONLY`` (mount(8) ``-o remount,bind,ro``), so even a
root process in the chroot gets EROFS for any write into it (mount(2), "Creating a bind mount"
and "Remounting an existing mount")."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from composer.core import tools

Bind = tuple[Path, str]  # (host path, path inside the tree)


def run_in(
    tree: Path,
    argv: Sequence[str],
    *,
    binds: Sequence[Bind] = (),
    ro_binds: Sequence[Bind] = (),
    env: dict[str, str] | None = None,
) -> None:
    """Run ``argv`` chrooted into ``tree`` (its output logged: composer/core/tools.py);
    ``binds`` (writable) and ``ro_binds`` (read-only) are (host path, path inside) pairs."""
    command, full_env = _unshared(tree, argv, binds, ro_binds, env)
    tools.run(command, env=full_env)


def output_in(
    tree: Path,
    argv: Sequence[str],
    *,
    binds: Sequence[Bind] = (),
    ro_binds: Sequence[Bind] = (),
    env: dict[str, str] | None = None,
) -> str:
    """:func:`run_in`, returning the command's standard output as text (not logged)."""
    command, full_env = _unshared(tree, argv, binds, ro_binds, env)
    return tools.output(command, env=full_env)


def _unshared(
    tree: Path,
    argv: Sequence[str],
    binds: Sequence[Bind],
    ro_binds: Sequence[Bind],
    env: dict[str, str] | None,
) -> tuple[list[str], dict[str, str]]:
    """The unshare command line that mounts, binds and chroots, and its environment."""
    top = str(tree.resolve())
    root = shlex.quote(top)
    mounts = [
        f"mount -t proc proc {root}/proc",
        f"mount --rbind /sys {root}/sys",
        f"mount --rbind /dev {root}/dev",
    ]
    for (host, inside), read_only in [(b, False) for b in binds] + [(b, True) for b in ro_binds]:
        dest = shlex.quote(f"{top}/{inside.lstrip('/')}")
        mounts.append(f"mkdir -p {dest}")
        mounts.append(f"mount --bind {shlex.quote(str(host.resolve()))} {dest}")
        if read_only:  # MS_REMOUNT|MS_BIND|MS_RDONLY on that one mount only
            mounts.append(f"mount -o remount,bind,ro {dest}")
    script = " && ".join(mounts) + " && exec chroot " + root + " " + shlex.join(argv)
    base_env = {"PATH": tools.SYSTEM_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root"}
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
