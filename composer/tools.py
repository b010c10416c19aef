"""One way to run external tools: command line in, ToolError (tool, command, stderr tail) out."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from composer.errors import MissingToolError, ToolError

# Which Debian package provides a tool, for the "not found" message.
PACKAGES = {
    "mmdebstrap": "mmdebstrap",
    "mkfs.vfat": "dosfstools",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
    "mcopy": "mtools",
    "mmd": "mtools",
    "sfdisk": "fdisk",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "swtpm": "swtpm",
    "swtpm_setup": "swtpm-tools",
    "sbsign": "sbsigntool",
    "sbverify": "sbsigntool",
    "xz": "xz-utils",
    "zstd": "zstd",
    "unshare": "util-linux",
    "chroot": "coreutils",
}


def which(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise MissingToolError(tool, PACKAGES.get(tool, tool))
    return path


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    capture: bool = True,
    log: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool; raise ToolError on failure. With ``log`` the output is appended there."""
    args = [str(a) for a in argv]
    tool = Path(args[0]).name
    exe = which(args[0]) if "/" not in args[0] else args[0]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    if log is not None:
        with open(log, "ab") as fh:
            fh.write(("$ " + " ".join(args) + "\n").encode())
            fh.flush()
            proc = subprocess.run(
                [exe, *args[1:]],
                env=full_env,
                cwd=cwd,
                input=input,
                stdout=fh,
                stderr=subprocess.PIPE,
                check=False,
            )
            fh.write(proc.stderr)
        result = subprocess.CompletedProcess(args, proc.returncode, b"", proc.stderr)
    else:
        result = subprocess.run(
            [exe, *args[1:]],
            env=full_env,
            cwd=cwd,
            input=input,
            capture_output=capture,
            check=False,
        )
    if result.returncode != 0:
        stderr = (result.stderr or b"").decode(errors="replace")
        if not stderr.strip() and result.stdout:
            stderr = result.stdout.decode(errors="replace")
        raise ToolError(tool, args, result.returncode, stderr)
    return result


def output(argv: Sequence[str | os.PathLike[str]], **kwargs: object) -> str:
    """Run a tool and return its stdout as text."""
    return run(argv, **kwargs).stdout.decode()  # type: ignore[arg-type]
