"""One way to run external tools: command line in, ToolError (tool, command, stderr tail) out.

Every tool dies with the command that started it, whatever kills that command, and so do the
tool's own children (mmdebstrap -> apt -> dpkg -> maintainer scripts, dnf and its scriptlets,
dracut in a chroot): each tool runs below a small reaper process (composer/core/reaper.py), a child
subreaper that every orphan of the tool is re-parented to. The reaper gets SIGTERM from the
kernel when the composer's thread that started it dies (PR_SET_PDEATHSIG), also after a
SIGKILL of the composer, and from the composer on an error or a signal (Ctrl-C, SIGTERM,
SIGHUP); it then kills the tool's whole tree and reaps it before it exits, and the composer
reaps the reaper: when :func:`run` returns or raises, nothing of the tool is left. A PID
namespace would do the same, but systemd (detect-virt) takes a PID namespace for a container,
and dracut then makes initrds without device nodes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from composer.core.errors import MissingToolError, ToolError
from composer.core.lifetime import die_with_parent

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
REAPER = Path(__file__).with_name("reaper.py")


def which(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise MissingToolError(tool, PACKAGES.get(tool, tool))
    return path


def reaped(argv: Sequence[str]) -> list[str]:
    """``argv`` as it is started: below its reaper (the standard library only: -I -S)."""
    return [sys.executable, "-I", "-S", str(REAPER), "--", *argv]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a started tool with everything it started, and reap it: its reaper kills the
    tool's tree and exits only when nothing of it is left."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:  # a reaper that does not answer: its group, at least
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: int | IO[bytes] | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` below its reaper (see the module docstring); :func:`stop` ends it."""
    return subprocess.Popen(
        reaped(argv),
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=die_with_parent(signal.SIGTERM),  # the reaper's cue to kill the tree
        process_group=0,  # Ctrl-C reaches the composer only; it stops the tool itself
    )


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    capture: bool = True,
    log: Path | None = None,
    stdout: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool; raise ToolError on failure. With ``log`` its output and errors go there as
    they come (a killed build's log shows how far each tool got); with ``stdout`` (an open
    file) the tool writes its output into that file."""
    args = [str(a) for a in argv]
    tool = Path(args[0]).name
    exe = which(args[0]) if "/" not in args[0] else args[0]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    stdin = subprocess.DEVNULL if input is None else subprocess.PIPE
    if log is not None:
        with open(log, "ab") as fh:
            fh.write(("$ " + " ".join(args) + "\n").encode())
            fh.flush()
            start_at = fh.tell()
            _, _, code = _communicate(
                [exe, *args[1:]], full_env, cwd, input, stdin, stdout or fh, fh
            )
        result = subprocess.CompletedProcess(args, code, b"", _tail(log, start_at) if code else b"")
    else:
        pipe = subprocess.PIPE if capture else None
        out, err, code = _communicate(
            [exe, *args[1:]], full_env, cwd, input, stdin, stdout or pipe, pipe
        )
        result = subprocess.CompletedProcess(args, code, out, err)
    if result.returncode != 0:
        stderr = (result.stderr or b"").decode(errors="replace")
        if not stderr.strip() and result.stdout:
            stderr = result.stdout.decode(errors="replace")
        raise ToolError(tool, args, result.returncode, stderr)
    return result


def _tail(log: Path, start: int, size: int = 64 * 1024) -> bytes:
    """What a failed tool wrote to the log (its last ``size`` bytes): for the error message."""
    with open(log, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        fh.seek(max(start, end - size))
        return fh.read()


def _communicate(
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path | None,
    input: bytes | None,
    stdin: int,
    stdout: int | IO[bytes] | None,
    stderr: int | IO[bytes] | None,
) -> tuple[bytes, bytes, int]:
    proc = start(argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)
    try:
        out, err = proc.communicate(input)
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP (lifetime.Interrupted), anything
        stop(proc)
        raise
    return out or b"", err or b"", proc.returncode


def output(argv: Sequence[str | os.PathLike[str]], **kwargs: object) -> str:
    """Run a tool and return its stdout as text."""
    return run(argv, **kwargs).stdout.decode()  # type: ignore[arg-type]
