"""The composer's log: the standard ``logging`` module, one logger per module under
``composer``, and a file that gets everything logged while a command runs.

What goes in (plain lines, in the order they happen): every external tool's command line
(``$ ARGV``) and its output as it comes (composer/core/tools.py), ``# stage: NAME`` where a
build stage begins, and notes (``# …``: stage cache hits, misses and stores, keys used, why
something was not cached, what a failed build died of). Without a log file nothing is
written anywhere: the ``composer`` logger has a do-nothing handler, and records below
WARNING are not even made.

Lines logged while work overlaps (build stages in threads of their own) carry the name of
their work as a prefix (``[uki-virt] $ dracut …``), so that each stage's lines can be told
apart: see :func:`prefixed`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

ROOT = "composer"
logging.getLogger(ROOT).addHandler(logging.NullHandler())
# the prefix of the lines this thread of control logs now ("" for none)
_PREFIX: ContextVar[Callable[[], str] | None] = ContextVar("dps_composer_log_prefix", default=None)


@contextlib.contextmanager
def prefixed(prefix: Callable[[], str]) -> Iterator[None]:
    """Lines logged in this block (this thread) start with ``prefix()``, asked at each line."""
    token = _PREFIX.set(prefix)
    try:
        yield
    finally:
        _PREFIX.reset(token)


class LineFormatter(logging.Formatter):
    """The message alone, after the prefix of :func:`prefixed` (on each of its lines)."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = _PREFIX.get()
        tag = prefix() if prefix is not None else ""
        return tag + text.replace("\n", "\n" + tag) if tag else text


def note(logger: logging.Logger, text: str) -> None:
    """A note in the log: ``# text`` (each further line of ``text`` a comment too)."""
    logger.info("# %s", text.replace("\n", "\n# "))


class _LogFileHandler(logging.FileHandler):
    """A log file's handler that, when lines cannot be written (its disk is full: the command
    then fails and says so itself), says so once on stderr, where ``logging`` would print a
    traceback for every line and closing the file would raise."""

    said = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self._lost(sys.exc_info()[1])

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:  # what could not be written is flushed once more, in vain
            self._lost(exc)

    def _lost(self, why: BaseException | None) -> None:
        if not self.said:
            self.said = True
            sys.stderr.write(
                f"log file {self.baseFilename}: some lines from here on are missing: {why}\n"
            )


@contextlib.contextmanager
def log_file(path: Path) -> Iterator[Path]:
    """Everything the composer logs while the block runs, appended to ``path`` (each line
    written through at once: a killed command's log shows how far it got)."""
    handler = _LogFileHandler(path, mode="a", encoding="utf-8", errors="replace")
    handler.setFormatter(LineFormatter())
    logger = logging.getLogger(ROOT)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the file is the log; nothing reaches a root handler
    try:
        yield path
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.removeHandler(handler)
        handler.close()
