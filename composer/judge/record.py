"""The check record on the serial line: framed, so that a reader takes it only when it is whole.

The guest's check (``composer/data/check/dps-composer-check``) writes one line::

    DPS-COMPOSER-CHECK {json} DPS-COMPOSER-CHECK-END bytes=N sha256=HEX

The trailer comes last, so a line that is still being written (the ~8 KB JSON takes a while at
115200 baud) has no trailer yet, and its fixed-length hash makes a cut-off trailer impossible to
mistake for a whole one. A record whose length or hash does not match what arrived was damaged
on the way (kernel messages written into the middle of it on a shared console, lost bytes):
that is said as such, never parsed as the guest's result. Images built before the trailer
existed write the JSON alone; such a line is taken when it is complete and parses.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

CHECK_PREFIX = "DPS-COMPOSER-CHECK "
CHECK_END = " DPS-COMPOSER-CHECK-END"
_TRAILER = re.compile(re.escape(CHECK_END) + r" bytes=(\d+) sha256=([0-9a-f]{64})\s*$")
MAX_RECORD = 4 * 1024 * 1024  # more than this without a trailer: not a record any more


@dataclass(frozen=True)
class Record:
    """A whole check record (``payload`` set) or one that cannot be whole (``problem``)."""

    payload: str | None
    problem: str = ""
    framed: bool = True


def frame(payload: str) -> str:
    """The record line for ``payload`` (what the guest's check writes; for tests)."""
    data = payload.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(data).hexdigest()
    return f"{CHECK_PREFIX}{payload}{CHECK_END} bytes={len(data)} sha256={digest}"


def _verify(body: str, size: int, digest: str) -> Record:
    data = body.encode("utf-8", "surrogateescape")
    if len(data) == size and hashlib.sha256(data).hexdigest() == digest:
        return Record(data.decode("utf-8", "replace"))
    got = f"{len(data)} bytes arrived for {size} announced"
    why = "bytes were lost" if len(data) < size else "other output was mixed into it"
    if len(data) == size:
        why = "its content changed on the way"
    return Record(None, f"check record damaged in transit ({got}, sha256 differs: {why})")


def _legacy(text: str) -> Record | None:
    """An unframed record from an older check script: the JSON alone on a complete line."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return Record(text.strip(), framed=False)


class RecordReader:
    """Feed the complete lines of one serial channel; the first whole record is returned once.

    Lines are joined with a newline while a record has no trailer yet: a record broken by an
    interleaved message then shows up as damaged (its hash differs) instead of as a parse error
    of the guest's JSON.
    """

    def __init__(self) -> None:
        self._pending: str | None = None
        self.done: Record | None = None

    @property
    def pending(self) -> bool:
        """A record started but has not ended (so far)."""
        return self._pending is not None and self.done is None

    def feed(self, line: str) -> Record | None:
        if self.done is not None:
            return None
        if self._pending is None:
            i = line.find(CHECK_PREFIX)
            if i < 0:
                return None
            text = line[i + len(CHECK_PREFIX) :]
            first = True
        else:
            text, first = self._pending + "\n" + line, False
        found = _TRAILER.search(text)
        if found:
            self.done = _verify(text[: found.start()], int(found[1]), found[2])
        elif first and (legacy := _legacy(text)) is not None:
            self.done = legacy
        elif len(text) > MAX_RECORD:
            self.done = Record(None, f"check record has no end marker after {len(text)} bytes")
        else:
            self._pending = text
        return self.done

    def finish(self) -> Record | None:
        """At the end of the boot: a record that started but never ended was truncated."""
        if self.pending:
            got = len((self._pending or "").encode("utf-8", "surrogateescape"))
            self.done = Record(None, f"check record truncated: no end marker after {got} bytes")
            return self.done
        return None
