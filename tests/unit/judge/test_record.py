"""The check record's framing: whole records only, damage and truncation said as such.

The guest side is the real check script (its frame_record function, run by sh); the reader is
fed the lines a serial channel would deliver."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composer import DATA
from composer.judge.record import CHECK_PREFIX, RecordReader, frame

CHECK = DATA / "check" / "dps-composer-check"
PAYLOAD = json.dumps(
    {"version": 1, "root": {"source": "/dev/vda2"}, "note": "caf\u00e9 \u25cf", "pad": "p" * 2000}
)


def guest_frame(payload: str) -> str:
    """The record line as the guest's check script writes it."""
    proc = subprocess.run(
        ["sh", "-c", '. "$0"; frame_record "$1"', str(CHECK), payload],
        env={**os.environ, "DPS_COMPOSER_CHECK_LIB": "1", "LC_ALL": "C"},
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode("utf-8", "surrogateescape").rstrip("\n")


def read(lines: list[str]) -> tuple[RecordReader, list[object]]:
    reader = RecordReader()
    return reader, [reader.feed(line) for line in lines]


def test_guest_and_host_frame_alike() -> None:
    assert guest_frame(PAYLOAD) == frame(PAYLOAD)


def test_a_whole_record_is_taken_once() -> None:
    reader, got = read(["[  OK  ] something", "x " + guest_frame(PAYLOAD), "more"])
    assert got[0] is None and got[2] is None
    record = reader.done
    assert record is not None and record.payload == PAYLOAD and record.framed
    assert json.loads(record.payload)["note"] == "caf\u00e9 \u25cf"


@pytest.mark.parametrize("cut", [20, 200, -80, -64, -1])
def test_a_record_cut_short_is_not_taken_and_is_truncated_at_the_end(cut: int) -> None:
    """The reader is handed what a channel has so far: any prefix of the line is not a record
    (taking a line the guest was still writing gave a JSONDecodeError: "Unterminated string")."""
    line = guest_frame(PAYLOAD)[:cut]
    reader, got = read([line])
    assert got == [None] and reader.pending
    record = reader.finish()
    assert record is not None and record.payload is None
    assert "truncated" in record.problem


def test_kernel_messages_inside_a_record_are_damage_not_a_result() -> None:
    line = guest_frame(PAYLOAD)
    half = len(line) // 2
    lines = [line[:half] + "[   12.345678] random: crng init done", line[half:]]
    reader, got = read(lines)
    record = reader.done
    assert got[0] is None and record is not None and record.payload is None
    assert "damaged in transit" in record.problem and "mixed into it" in record.problem


def test_lost_bytes_are_damage() -> None:
    line = guest_frame(PAYLOAD)
    body_end = line.index(" DPS-COMPOSER-CHECK-END")
    _, got = read([line[:30] + line[40:]])
    record = got[0]
    assert record is not None and record.payload is None and "lost" in record.problem  # type: ignore[attr-defined]
    assert body_end > 40


def test_an_older_unframed_record_is_taken_when_complete() -> None:
    _, got = read([CHECK_PREFIX + PAYLOAD])
    record = got[0]
    assert record is not None and record.payload == PAYLOAD and not record.framed  # type: ignore[attr-defined]


def test_bytes_that_are_not_utf8_still_verify() -> None:
    """The check channel is read with surrogateescape: the hash is over the guest's bytes."""
    raw = '{"mounts":"/srv/\xff\xfe"}'.encode("latin-1")
    payload = raw.decode("utf-8", "surrogateescape")
    _, got = read([guest_frame(payload)])
    record = got[0]
    assert record is not None and record.payload is not None  # type: ignore[attr-defined]
    assert record.payload.startswith('{"mounts":"/srv/')  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_any_json_text_round_trips(text: str) -> None:
    payload = json.dumps({"t": text})
    _, got = read([frame(payload)])
    record = got[0]
    assert record is not None and record.payload == payload  # type: ignore[attr-defined]
