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

import collections
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from composer.core.errors import MissingToolError, ToolError
from composer.core.lifetime import Stopped, die_with_parent, signals_held, stop_scope

# The distribution's own directories, in its order: the PATH of what a tool runs inside a tree
# (a chroot) and of tools that run the host's helpers by name (mmdebstrap runs mmtarfilter, a
# `#!/usr/bin/env python3` script, once per essential package): a user's PATH may put a
# version manager's shims first (pyenv's cost 0.1 s of shell per python3 there).
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

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
    "cryptsetup": "cryptsetup-bin",
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
LOG = logging.getLogger(__name__)
TAIL_LINES = 200  # what a ToolError keeps of a failed tool's output (its message shows 15)
LINE_MAX = 1 << 16  # a line longer than this is logged in pieces


def lower_priority(niceness: int = 10) -> None:
    """This thread, and every tool it starts from now on, runs at a lower CPU priority: for
    work beside a longer chain of the same build (on two cores, uki-virt's xz and zstd
    threads took the root tree's dpkg its core). Linux keeps a nice value per thread, and a
    child inherits its creator's; a build's stages run each in a thread of its own, which
    ends with the stage (composer/build/schedule.py)."""
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, max(niceness, os.getpriority(os.PRIO_PROCESS, tid)))


def which(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path=SYSTEM_PATH)
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
    """Start ``argv`` below its reaper (see the module docstring); :func:`stop` ends it.

    A signal that comes while the reaper is being started (subprocess.Popen forks, then
    waits for the exec) is held until Popen has returned, and the reaper is then stopped
    before the signal's exception leaves: raised inside Popen, the exception would leave a
    started tool that nobody knows of, running on (in the tree the build is removing, and
    writing to its output) until the composer's thread ends."""
    proc = None
    try:
        with signals_held():
            proc = subprocess.Popen(
                reaped(argv),
                env=env,
                cwd=cwd,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                preexec_fn=die_with_parent(signal.SIGTERM),  # the reaper's cue to kill the tree
                process_group=0,  # Ctrl-C reaches the composer only; it stops the tool itself
            )
    except BaseException:
        if proc is not None:
            stop(proc)
        raise
    return proc


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    capture: bool = False,
    stdout: IO[bytes] | None = None,
    on_line: Callable[[str], bool] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool; raise ToolError (with the tail of what it said) on failure.

    The command line is logged (``$ ARGV``), and so is everything the tool writes, line by
    line as it comes (a killed build's log shows how far each tool got: composer/core/log.py),
    except its standard output when ``capture`` is set (it is returned as ``stdout``) or when
    it goes into the open file ``stdout``. ``input`` goes to the tool's standard input and is
    never logged. ``on_line`` sees each line the tool says as it comes (progress: see
    composer/core/progress.py); a line it returns True for is consumed, not logged."""
    args = [str(a) for a in argv]
    scope = stop_scope()  # another thread may stop this one's tools (lifetime.StopScope)
    if scope is not None:
        scope.check()
    LOG.info("$ %s", " ".join(args))
    exe = which(args[0]) if "/" not in args[0] else args[0]
    full_env = {**os.environ, **(env or {})}
    merged = stdout is None and not capture  # everything it writes goes to the log
    proc = start(
        [exe, *args[1:]],
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=stdout or subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
    )
    try:
        with contextlib.ExitStack() as stoppable_child:
            if scope is not None:
                stoppable_child.enter_context(scope.child(lambda: stop(proc)))
            out, said = _communicate(proc, input, capture=capture, merged=merged, on_line=on_line)
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP (lifetime.Interrupted), anything
        stop(proc)
        raise
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    if scope is not None and scope.stopped:
        raise Stopped  # it was stopped from outside: not a failure of its own
    if proc.returncode != 0:
        tail = "\n".join(said) or out.decode(errors="replace")
        raise ToolError(Path(args[0]).name, args, proc.returncode, tail)
    return subprocess.CompletedProcess(args, proc.returncode, out, b"")


def _communicate(
    proc: subprocess.Popen[bytes],
    input: bytes | None,
    *,
    capture: bool,
    merged: bool,
    on_line: Callable[[str], bool] | None = None,
) -> tuple[bytes, list[str]]:
    """Feed ``input``, collect the captured standard output (threads), and log what the tool
    says, line by line, in this thread (where a signal's exception arrives); (its standard
    output if captured, the last lines it said)."""
    helpers = []
    if input is not None:
        helpers.append(threading.Thread(target=_feed, args=(proc, input), daemon=True))
    chunks: list[bytes] = []
    if capture:
        helpers.append(threading.Thread(target=_drain, args=(proc, chunks), daemon=True))
    for helper in helpers:
        helper.start()
    said: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    talk = proc.stdout if merged else proc.stderr
    assert talk is not None
    for raw in iter(lambda: talk.readline(LINE_MAX), b""):
        line = raw.decode(errors="replace").rstrip("\n")
        if on_line is not None and on_line(line):
            continue
        LOG.info("%s", line)
        said.append(line)
    proc.wait()
    for helper in helpers:
        helper.join()
    return b"".join(chunks), list(said)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError), proc.stdin:
        proc.stdin.write(data)


def _drain(proc: subprocess.Popen[bytes], chunks: list[bytes]) -> None:
    assert proc.stdout is not None
    chunks.extend(iter(lambda: proc.stdout.read(1 << 16), b""))  # type: ignore[union-attr]


def output(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> str:
    """Run a tool and return its standard output as text (what it says on stderr is logged)."""
    return run(argv, env=env, cwd=cwd, input=input, capture=True).stdout.decode()
