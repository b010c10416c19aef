"""The composer's log: the standard ``logging`` module, one logger per module under
``composer``, and a file that gets everything logged while a command runs.

What goes in (plain lines, in the order they happen): every external tool's command line
(``$ ARGV``) and its output as it comes (composer/core/tools.py), ``# stage: NAME`` where a
build stage begins, and notes (``# …``: stage cache hits, misses and stores, keys used, why
something was not cached, what a failed build died of). Without a log file nothing is
written anywhere: the ``composer`` logger has a do-nothing handler, and records below
WARNING are not even made.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

ROOT = "composer"
logging.getLogger(ROOT).addHandler(logging.NullHandler())


def note(logger: logging.Logger, text: str) -> None:
    """A note in the log: ``# text`` (each further line of ``text`` a comment too)."""
    logger.info("# %s", text.replace("\n", "\n# "))


@contextlib.contextmanager
def log_file(path: Path) -> Iterator[Path]:
    """Everything the composer logs while the block runs, appended to ``path`` (each line
    written through at once: a killed command's log shows how far it got)."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8", errors="replace")
    handler.setFormatter(logging.Formatter("%(message)s"))
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
