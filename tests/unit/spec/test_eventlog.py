"""Parsing and replaying a crypto-agile TCG event log; the guest's transport encoding."""

from __future__ import annotations

import base64
import gzip
import hashlib
import struct

import pytest

from composer.measure.pcrdiff import first_difference, userspace_phases
from composer.spec import eventlog

SHA1, SHA256 = 0x4, 0xB


def spec_id_header() -> bytes:
    body = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 2)
    body += struct.pack("<HH", SHA1, 20) + struct.pack("<HH", SHA256, 32) + b"\0"
    return (
        struct.pack("<II", 0, eventlog.EV_NO_ACTION)
        + bytes(20)
        + struct.pack("<I", len(body))
        + body
    )


def event2(pcr: int, etype: int, data: bytes) -> bytes:
    digests = struct.pack("<H", SHA1) + hashlib.sha1(data).digest()
    digests += struct.pack("<H", SHA256) + hashlib.sha256(data).digest()
    return struct.pack("<III", pcr, etype, 2) + digests + struct.pack("<I", len(data)) + data


def sample_log() -> bytes:
    locality = b"StartupLocality\0" + b"\x03"
    return (
        spec_id_header()
        + event2(0, eventlog.EV_NO_ACTION, locality)
        + event2(0, 0x8, b"\x00\x00")
        + event2(
            7,
            eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG,
            eventlog.variable_event_data(
                "8be4df61-93ca-11d2-aa0d-00e098032b8c", "SecureBoot", b"\0"
            ),
        )
        + event2(4, eventlog.EV_EFI_ACTION, b"Calling EFI Application from Boot Option")
        + event2(4, eventlog.EV_SEPARATOR, bytes(4))
    )


def test_parse_and_replay() -> None:
    events = eventlog.parse(sample_log())
    assert [e.type_name for e in events] == [
        "EV_NO_ACTION",
        "EV_NO_ACTION",
        "EV_S_CRTM_VERSION",
        "EV_EFI_VARIABLE_DRIVER_CONFIG",
        "EV_EFI_ACTION",
        "EV_SEPARATOR",
    ]
    assert events[3].describe() == "SecureBoot (1 bytes)"
    assert events[4].describe() == "Calling EFI Application from Boot Option"
    pcrs = eventlog.replay(events)
    # PCR 0 starts at the startup locality (3), not at zero
    start = bytes(31) + b"\x03"
    assert pcrs[0] == hashlib.sha256(start + hashlib.sha256(b"\0\0").digest()).hexdigest()
    pcr4 = bytes(32)
    for data in (b"Calling EFI Application from Boot Option", bytes(4)):
        pcr4 = hashlib.sha256(pcr4 + hashlib.sha256(data).digest()).digest()
    assert pcrs[4] == pcr4.hex()
    assert (
        eventlog.replay(events, "sha1")[7]
        == hashlib.sha1(bytes(20) + hashlib.sha1(events[3].data).digest()).hexdigest()
    )


def test_variable_data_roundtrip() -> None:
    data = eventlog.variable_event_data("d719b2cb-3d3a-4596-a3bc-dad00e67656f", "db", b"xyz")
    assert eventlog.variable_data(data) == ("d719b2cb-3d3a-4596-a3bc-dad00e67656f", "db", b"xyz")


def test_transport_encodings() -> None:
    blob = sample_log()
    packed = {"encoding": "gzip+base64", "data": base64.b64encode(gzip.compress(blob)).decode()}
    assert eventlog.decode_transport(packed) == blob
    assert (
        eventlog.decode_transport({"encoding": "base64", "data": base64.b64encode(blob).decode()})
        == blob
    )
    with pytest.raises(eventlog.EventLogError):
        eventlog.decode_transport({"encoding": "rot13", "data": ""})


def test_not_a_crypto_agile_log() -> None:
    with pytest.raises(eventlog.EventLogError, match="Spec ID"):
        eventlog.parse(event2(0, 1, b"x") * 3)


def test_first_difference_names_the_event() -> None:
    events = eventlog.for_pcr(eventlog.parse(sample_log()), 4)
    same = [e.to_dict() for e in events]
    assert first_difference(same, events) is None
    changed = [dict(same[0], digest="00" * 32, what="Calling EFI Application"), same[1]]
    diff = first_difference(changed, events)
    assert diff is not None and diff.startswith("event 1: predicted EV_EFI_ACTION")
    assert "was not logged" in (first_difference([*same, same[1]], events) or "")
    assert "unexpected EV_SEPARATOR" in (first_difference(same[:1], events) or "")
    assert first_difference(same[:1], events, prefix_only=True) is None


def test_userspace_phases_from_measure_log() -> None:
    lines = [
        '{"pcr":11,"content":{"string":"enter-initrd","eventType":"phase"}}',
        '{"pcr":15,"content":{"string":"machine-id:x","eventType":"machine-id"}}',
        "not json",
        '{"pcr":11,"content":{"string":"leave-initrd","eventType":"phase"}}',
    ]
    assert userspace_phases({"measure_log": lines}) == ["enter-initrd", "leave-initrd"]
