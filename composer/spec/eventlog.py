"""The firmware's TCG event log (TCG PC Client Platform Firmware Profile, crypto-agile format).

Linux exposes it as /sys/kernel/security/tpm0/binary_bios_measurements; the in-guest check sends
it gzip'd and base64'd. Parsing it lets a verdict say *which* measurement differs from a
prediction instead of only "PCR 7 differs". Replaying the digests must give the live PCRs;
:func:`replay` does that so a log can be checked against the values the TPM reported.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION = 0x80000007
EV_EFI_VARIABLE_AUTHORITY = 0x800000E0

EVENT_TYPES: dict[int, str] = {
    0x0: "EV_PREBOOT_CERT",
    0x1: "EV_POST_CODE",
    0x3: "EV_NO_ACTION",
    0x4: "EV_SEPARATOR",
    0x5: "EV_ACTION",
    0x6: "EV_EVENT_TAG",
    0x7: "EV_S_CRTM_CONTENTS",
    0x8: "EV_S_CRTM_VERSION",
    0x9: "EV_CPU_MICROCODE",
    0xA: "EV_PLATFORM_CONFIG_FLAGS",
    0xB: "EV_TABLE_OF_DEVICES",
    0xC: "EV_COMPACT_HASH",
    0xD: "EV_IPL",
    0xE: "EV_IPL_PARTITION_DATA",
    0xF: "EV_NONHOST_CODE",
    0x10: "EV_NONHOST_CONFIG",
    0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
}
# TPM2_ALG_ID -> hashlib name
ALGORITHMS: dict[int, str] = {0x4: "sha1", 0xB: "sha256", 0xC: "sha384", 0xD: "sha512"}
_SPEC_ID = b"Spec ID Event03\0"
_STARTUP_LOCALITY = b"StartupLocality\0"


class EventLogError(ValueError):
    pass


@dataclass(frozen=True)
class Event:
    index: int  # position in the log, 0 = the Spec ID header
    pcr: int
    type: int
    digests: dict[str, bytes]  # bank -> digest
    data: bytes

    @property
    def type_name(self) -> str:
        return EVENT_TYPES.get(self.type, f"0x{self.type:08x}")

    def describe(self) -> str:
        """A short human description of the event data (variable name, action text, path)."""
        return describe(self.type, self.data)

    def to_dict(self, bank: str = "sha256") -> dict[str, object]:
        d = self.digests.get(bank)
        return {
            "pcr": self.pcr,
            "type": self.type_name,
            "digest": d.hex() if d else None,
            "what": self.describe(),
        }


def decode_transport(payload: Mapping[str, object]) -> bytes:
    """The raw log bytes from the check's {"encoding": ..., "data": ...}."""
    raw = base64.b64decode(str(payload.get("data", "")))
    enc = payload.get("encoding")
    if enc == "gzip+base64":
        return gzip.decompress(raw)
    if enc == "base64":
        return raw
    raise EventLogError(f"unknown event log encoding {enc!r}")


def parse(blob: bytes) -> list[Event]:
    """Parse a crypto-agile event log (the SHA1-format Spec ID header, then TCG_PCR_EVENT2s)."""
    if len(blob) < 32:
        raise EventLogError("event log too short")
    pcr, etype = struct.unpack_from("<II", blob, 0)
    (size,) = struct.unpack_from("<I", blob, 28)
    header = blob[32 : 32 + size]
    if etype != EV_NO_ACTION or not header.startswith(_SPEC_ID):
        raise EventLogError("not a crypto-agile log (no 'Spec ID Event03' header)")
    sizes = _digest_sizes(header)
    events = [Event(0, pcr, etype, {"sha1": blob[8:28]}, header)]
    pos = 32 + size
    while pos + 12 <= len(blob):
        pcr, etype, count = struct.unpack_from("<III", blob, pos)
        if pcr == 0xFFFFFFFF or (pcr == 0 and etype == 0 and count == 0):
            break  # trailing padding
        pos += 12
        digests: dict[str, bytes] = {}
        for _ in range(count):
            (alg,) = struct.unpack_from("<H", blob, pos)
            if alg not in sizes:
                raise EventLogError(f"event {len(events)}: digest algorithm 0x{alg:x} not declared")
            digests[ALGORITHMS.get(alg, f"alg-0x{alg:x}")] = blob[pos + 2 : pos + 2 + sizes[alg]]
            pos += 2 + sizes[alg]
        (size,) = struct.unpack_from("<I", blob, pos)
        data = blob[pos + 4 : pos + 4 + size]
        if len(data) != size:
            raise EventLogError(f"event {len(events)}: truncated")
        pos += 4 + size
        events.append(Event(len(events), pcr, etype, digests, data))
    return events


def _digest_sizes(header: bytes) -> dict[int, int]:
    (n,) = struct.unpack_from("<I", header, 24)
    sizes = {}
    for i in range(n):
        alg, size = struct.unpack_from("<HH", header, 28 + 4 * i)
        sizes[alg] = size
    return sizes


def replay(events: Iterable[Event], bank: str = "sha256") -> dict[int, str]:
    """PCR values the log implies (hex), honouring the StartupLocality event for PCR 0."""
    size = hashlib.new(bank).digest_size
    pcrs: dict[int, bytes] = {}
    for ev in events:
        if ev.type == EV_NO_ACTION:
            if ev.data.startswith(_STARTUP_LOCALITY) and len(ev.data) > len(_STARTUP_LOCALITY):
                pcrs[ev.pcr] = bytes(size - 1) + ev.data[len(_STARTUP_LOCALITY) : 17]
            continue
        digest = ev.digests.get(bank)
        if digest is None:
            continue
        pcrs[ev.pcr] = hashlib.new(bank, pcrs.get(ev.pcr, bytes(size)) + digest).digest()
    return {n: v.hex() for n, v in sorted(pcrs.items())}


def for_pcr(events: Iterable[Event], pcr: int) -> list[Event]:
    return [e for e in events if e.pcr == pcr and e.type != EV_NO_ACTION]


def variable_data(data: bytes) -> tuple[str, str, bytes]:
    """UEFI_VARIABLE_DATA -> (vendor GUID, name, value)."""
    guid = str(uuid.UUID(bytes_le=data[:16]))
    nchars, dlen = struct.unpack_from("<QQ", data, 16)
    name = data[32 : 32 + 2 * nchars].decode("utf-16-le", errors="replace")
    value = data[32 + 2 * nchars : 32 + 2 * nchars + dlen]
    return guid, name, value


def variable_event_data(guid: str, name: str, value: bytes) -> bytes:
    """UEFI_VARIABLE_DATA as the firmware measures it (name in UTF-16 without NUL)."""
    encoded = name.encode("utf-16-le")
    return uuid.UUID(guid).bytes_le + struct.pack("<QQ", len(name), len(value)) + encoded + value


def _text(data: bytes) -> str:
    if len(data) >= 2 and data[1:2] == b"\0":
        return data.decode("utf-16-le", errors="replace").rstrip("\0")
    return data.decode("ascii", errors="replace").rstrip("\0")


def _image_path(data: bytes) -> str:
    """The file path node(s) of an EFI_IMAGE_LOAD_EVENT's device path, else its length."""
    if len(data) < 32:
        return ""
    length = struct.unpack_from("<QQQQ", data, 0)[1]
    (dp_len,) = struct.unpack_from("<Q", data, 24)
    dp, pos, parts = data[32 : 32 + dp_len], 0, []
    while pos + 4 <= len(dp):
        kind, sub, n = dp[pos], dp[pos + 1], struct.unpack_from("<H", dp, pos + 2)[0]
        if n < 4:
            break
        if kind == 4 and sub == 4:  # media / file path
            parts.append(dp[pos + 4 : pos + n].decode("utf-16-le", errors="replace").rstrip("\0"))
        pos += n
    return ("".join(parts) or "(no file path)") + f", {length} bytes"


def describe(etype: int, data: bytes) -> str:
    try:
        if etype in (EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_AUTHORITY, 0x80000002):
            _, name, value = variable_data(data)
            return f"{name} ({len(value)} bytes)"
        if etype in (EV_EFI_ACTION, 0x5, 0xD):
            return _text(data)[:120]
        if etype == EV_SEPARATOR:
            return data.hex()
        if etype == EV_EFI_BOOT_SERVICES_APPLICATION:
            return _image_path(data)
    except (struct.error, UnicodeDecodeError):
        pass
    return f"{len(data)} bytes"
