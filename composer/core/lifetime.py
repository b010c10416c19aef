"""Signals and child processes: whatever stops the composer, nothing it started lives on.

SIGTERM and SIGHUP (a cancelled CI job, a closed terminal) are turned into an exception in the
main thread, like Ctrl-C's KeyboardInterrupt, so every ``finally`` and context manager on the
way out runs: temporaries are removed and children stopped. Children are also asked to die
with us (``PR_SET_PDEATHSIG``) for the one signal nothing can catch, SIGKILL.

``PR_SET_PDEATHSIG`` fires when the *thread* that started the child exits, not the process
(prctl(2)): start long-lived children from a thread that outlives them.

A signal must not cut some steps in two: one that starts a child (the child runs, but the
exception comes before its starter knows it and could stop it) is run with
:func:`signals_held`, and the signal is raised when the step is done.

Work run in other threads (build stages that overlap) never gets a signal: the main thread
does, and stops that work through its :class:`StopScope`: the scope stops every child the
thread's tools have running (composer/core/tools.py registers them) and refuses to start more,
so the thread unwinds (its ``finally`` blocks remove its temporaries) with :class:`Stopped`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from types import FrameType

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
HANDLED = (signal.SIGTERM, signal.SIGHUP)
_held: list[int] = []  # signals_held() blocks running in the main thread (depth)
_pending: list[int] = []  # signals that came while one ran


class Interrupted(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """The process got SIGTERM or SIGHUP; unwinds like KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Stopped(BaseException):  # noqa: N818 - like Interrupted, an order to stop
    """The thread's work was stopped from outside (its :class:`StopScope`): another part of the
    command failed or the command was interrupted. A BaseException, so that no ``except
    Exception`` takes it for a tool's failure and carries on."""


class StopScope:
    """What one thread of work has running, so that another thread can stop it: every child
    registered by :meth:`child` is stopped by :meth:`stop`, and none can be started after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        self._children: dict[int, Callable[[], None]] = {}

    @property
    def stopped(self) -> bool:
        return self._stopped

    def check(self) -> None:
        """Raise :class:`Stopped` once the scope is stopped."""
        if self._stopped:
            raise Stopped

    def stop(self) -> None:
        """Stop every registered child now (in this thread); refuse new ones."""
        with self._lock:
            self._stopped = True
            stoppers = list(self._children.values())
        for stop_child in stoppers:
            stop_child()

    @contextlib.contextmanager
    def child(self, stop_child: Callable[[], None]) -> Iterator[None]:
        """A started child, stoppable with ``stop_child`` while the block runs; stopped at once
        (and :class:`Stopped` raised) if the scope already is."""
        with self._lock:
            if not self._stopped:
                self._children[id(stop_child)] = stop_child
        if id(stop_child) not in self._children:
            stop_child()
            raise Stopped
        try:
            yield
        finally:
            with self._lock:
                self._children.pop(id(stop_child), None)


_SCOPE: ContextVar[StopScope | None] = ContextVar("dps_composer_stop_scope", default=None)


def stop_scope() -> StopScope | None:
    """The scope of the running thread's work; None when nothing can stop it but a signal."""
    return _SCOPE.get()


@contextlib.contextmanager
def stoppable(scope: StopScope) -> Iterator[StopScope]:
    """Children started in this block (this thread) are stopped by ``scope.stop()``."""
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def _raise(signum: int, _frame: FrameType | None) -> None:
    # once is enough: a second signal while cleaning up must not abort the clean-up
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    if _held:
        _pending.append(signum)
        return
    raise Interrupted(signum)


def _hold_sigint(signum: int, _frame: FrameType | None) -> None:
    _pending.append(signum)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Run the block whole: SIGTERM and SIGHUP (with :func:`install_signal_handlers`) and
    SIGINT that arrive meanwhile raise Interrupted or KeyboardInterrupt when it ends, not
    inside it. Only the main thread gets them (elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigint = signal.getsignal(signal.SIGINT)
    if sigint is signal.default_int_handler:
        signal.signal(signal.SIGINT, _hold_sigint)
    _held.append(1)
    try:
        yield
    finally:
        _held.pop()
        if sigint is signal.default_int_handler:
            signal.signal(signal.SIGINT, sigint)
        if not _held and _pending:
            signum = _pending[0]
            _pending.clear()
            raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED:
        signal.signal(sig, _raise)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` for subprocess: the child gets ``sig`` when its parent thread dies.
    If the parent is already gone when the child starts, the child exits at once.

    ``prctl`` is looked up here, before the fork: between fork and exec a child of a threaded
    program (``boot -j``) must not call into the dynamic loader, whose lock another thread may
    have held at the fork."""
    parent = os.getpid()
    prctl = _libc().prctl  # loaded here: the child of a threaded parent must not dlopen

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
