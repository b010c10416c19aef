"""The process between the composer and every tool it runs: the tool's reaper.

It makes itself a child subreaper (PR_SET_CHILD_SUBREAPER, prctl(2)): whatever the tool starts
and leaves behind (a daemon, a process whose parent died, a new session) is re-parented to
this process rather than to init, so it can always find and kill the tool's whole tree. It
stops with SIGTERM (or SIGHUP, SIGINT): sent by the composer on an error or a signal, or by the
kernel when the composer's thread that started it dies, however it died (PR_SET_PDEATHSIG, set
before this program starts: composer.lifetime.die_with_parent). It then kills every process
below it and reaps them before it exits; when the tool ends by itself, anything it left running
is killed too. The tool itself runs as it would without it: same environment, same PID
namespace (systemd-detect-virt, and so dracut and maintainer scripts, must not take a build
for a container).

Started as a script, ``python -I -S reaper.py TOOL ARG...``: a few modules of the standard
library only, so that it starts fast (see composer/core/tools.py for what it costs).
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

TYPE_CHECKING = False  # without `typing`: importing it would double the start time
if TYPE_CHECKING:
    import signal
else:  # the C module: `signal` imports enum, a third of the start time
    import _signal as signal

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
STOP = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stop(Exception):  # noqa: N818 - a request, not an error
    pass


def _stop(_signum: int, _frame: object) -> None:
    _quiet()  # once is enough: a second signal must not cut the clean-up short
    raise Stop


def _quiet() -> None:
    for sig in STOP:
        signal.signal(sig, signal.SIG_IGN)


def _below(me: int) -> list[int]:
    """Every process below ``me`` (from the parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [me]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap() -> bool:
    """Reap what has ended; whether any child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def kill_tree() -> None:
    """Kill everything below this process and reap it (orphans come to us to be reaped)."""
    me = os.getpid()
    while _reap():
        for pid in _below(me):
            try:  # noqa: SIM105 - contextlib would cost 4 ms of every tool's start
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def _exec(argv: list[str]) -> None:
    """In the forked child: the tool, with the signal dispositions a fresh process has."""
    for sig in (*STOP, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        os.execvp(argv[0], argv)
    except OSError as err:
        os.write(2, f"{argv[0]}: {err.strerror}\n".encode())
    os._exit(127)


def _run(argv: list[str]) -> int | None:
    """Start the tool and wait for it (reaping orphans meanwhile); its wait status, or None
    when told to stop."""
    try:
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            os.write(2, b"reaper: prctl(PR_SET_CHILD_SUBREAPER) failed\n")
            os._exit(126)
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP)  # the child must not see our handler
        tool = os.fork()
        if tool == 0:
            _exec(argv)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == tool:
                return status
    except Stop:
        return None


def main(argv: list[str]) -> int:
    for sig in STOP:
        signal.signal(sig, _stop)
    status = _run(argv)
    _quiet()
    kill_tree()
    if status is None:
        return 128 + signal.SIGTERM
    code: int = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[1:] if args[:1] == ["--"] else args))
