"""Which measurement made a PCR differ: the predicted events (manifest) against the firmware's
event log and systemd's userspace measurement log that the guest check sent."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from composer.measure.pcr11 import PHASES
from composer.spec import eventlog

BANK = "sha256"


def guest_events(guest: Mapping[str, Any], pcr: int) -> list[eventlog.Event] | None:
    """The firmware log's events for ``pcr`` (None: no log, or it cannot be read)."""
    payload = guest.get("eventlog")
    if not isinstance(payload, dict):
        return None
    try:
        return eventlog.for_pcr(eventlog.parse(eventlog.decode_transport(payload)), pcr)
    except (eventlog.EventLogError, ValueError, OSError):
        return None


def userspace_phases(guest: Mapping[str, Any]) -> list[str]:
    """The boot phase words systemd-pcrphase measured into PCR 11, from tpm2-measure.log."""
    words = []
    for line in guest.get("measure_log") or []:
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, TypeError):
            continue
        if not isinstance(record, dict):
            continue
        content = record.get("content")
        if (
            record.get("pcr") == 11
            and isinstance(content, dict)
            and content.get("eventType") == "phase"
        ):
            words.append(str(content.get("string")))
    return words


def _short(digest: str | None) -> str:
    return (digest or "none")[:16] + "…"


def first_difference(
    predicted: Sequence[Mapping[str, Any]],
    logged: Sequence[eventlog.Event],
    prefix_only: bool = False,
) -> str | None:
    """None when the logged events equal the predicted ones, else the first difference.
    ``prefix_only``: the log may continue past the prediction (PCR 11: phases follow)."""
    n = len(predicted) if prefix_only else max(len(predicted), len(logged))
    for i in range(n):
        p = predicted[i] if i < len(predicted) else None
        e = logged[i] if i < len(logged) else None
        if p is None and e is not None:
            return f"event {i + 1}: unexpected {e.type_name} {e.describe()}"
        if e is None and p is not None:
            return f"event {i + 1}: predicted {p['type']} {p['what']} was not logged"
        assert p is not None and e is not None
        got = e.digests.get(BANK, b"").hex()
        if p["type"] != e.type_name or p["digest"] != got:
            return (
                f"event {i + 1}: predicted {p['type']} {p['what']} {_short(p['digest'])}, "
                f"logged {e.type_name} {e.describe()} {_short(got)}"
            )
    return None


def explain(pcr: int, guest: Mapping[str, Any], predicted: Sequence[Mapping[str, Any]]) -> str:
    """A short reason for a PCR mismatch, from the logs the guest sent."""
    logged = guest_events(guest, pcr)
    if logged is None:
        return "no firmware event log to compare"
    diff = first_difference(predicted, logged, prefix_only=pcr == 11)
    if diff:
        return f"firmware log {diff}"
    if pcr == 11:
        phases = userspace_phases(guest)
        want = PHASES[-1].split(":")
        if phases != want:
            return f"stub events as predicted; boot phases measured {phases}, expected {want}"
        return "stub events and boot phases as predicted; an extra measurement changed PCR 11"
    return "every logged event as predicted, yet the PCR differs (log incomplete?)"
