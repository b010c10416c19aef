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
    tools.run(
        ["unshare", "--mount", "--propagation", "private", "--fork", "sh", "-c", script],
        env=base_env,
    )
