"""One way to run external tools: command line in, ToolError (tool, command, stderr tail) out.

Every tool dies with the command that started it, whatever kills that command, and so do the
tool's own children (mmdebstrap -> apt -> dpkg -> maintainer scripts, dnf and its scriptlets,
dracut in a chroot): each tool runs as the first process of its own PID namespace
(``unshare --pid --fork --kill-child``). When that process dies the kernel kills everything
else in the namespace (pid_namespaces(7)), and it dies when ``unshare`` dies, which gets
SIGKILL when the composer's thread that started it dies (PR_SET_PDEATHSIG, also after a
SIGKILL of the composer). On an exception in the composer (Ctrl-C, SIGTERM, SIGHUP, an error)
the namespace's first process is killed and ``unshare`` reaped: when :func:`run` returns or
raises, nothing of the tool is left. Without the privilege to make PID namespaces the tool
gets its own process group instead, killed as a whole.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from composer.errors import MissingToolError, ToolError
from composer.lifetime import die_with_parent

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
PID_NAMESPACE = ("--pid", "--fork", "--kill-child")


def which(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise MissingToolError(tool, PACKAGES.get(tool, tool))
    return path


@functools.cache
def _unshare() -> str | None:
    """unshare(1) when it can make PID namespaces here (root, not in a restricted container)."""
    exe = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if exe is None or os.geteuid() != 0:
        return None
    probe = subprocess.run(
        [exe, *PID_NAMESPACE, "--", "true"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return exe if probe.returncode == 0 else None


def confined(argv: Sequence[str]) -> list[str]:
    """``argv`` as it is started: inside its own PID namespace where that is possible."""
    unshare = _unshare()
    return [unshare, *PID_NAMESPACE, "--", *argv] if unshare else list(argv)


def _namespace_init(pid: int) -> int | None:
    """The first process of the namespace that ``unshare`` (``pid``) forked, if any yet."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a started tool with everything it started, and reap it.

    The namespace's first process goes first: the kernel then kills the rest of the
    namespace, and ``unshare`` (which waits for it) exits only once the namespace is empty."""
    if proc.poll() is not None:
        return
    init = _namespace_init(proc.pid)
    if init is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        if init is None:  # no namespace (yet): the process group, the starter included
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
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
    """Start ``argv`` confined (see the module docstring); :func:`stop` ends it."""
    return subprocess.Popen(
        confined(argv),
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=die_with_parent(),
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
