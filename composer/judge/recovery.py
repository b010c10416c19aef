"""Recovery keys of sealed volumes (``[measured] recovery = "console"``): shown once on the
guest's console at first boot, kept out of every log, and proved to open their volume.

The image's first-boot unit (composer/rootfs/sealed.py) enrolls a recovery key with
``systemd-cryptenroll --recovery-key`` and writes it to the console in one line::

    dps-composer-recovery: /srv: recovery key: <64 modhex characters in groups of 8>

systemd makes a recovery key from 256 random bits as 8 groups of 8 "modhex" characters
(systemd v257 recovery-key.c, make_recovery_key), so the key has a shape nothing else on a
console has. ``boot`` reads the console through :meth:`RecoveryKeys.take`, which remembers
the key in memory and hands on the line with the key replaced: the scanner, the verdict, the
report and the kept ``serial.log`` (:func:`redact_text`) never hold it. After the VM has
stopped, :func:`key_opens` tests the key against the volume's LUKS2 header, read from the disk
the VM wrote (``cryptsetup open --test-passphrase``: no device is set up), so the verdict says
whether what a person would have written down really opens the volume.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.core import tools
from composer.core.errors import ComposerError, ToolError
from composer.core.workdir import scratch_dir, work_parent
from composer.image.formats import blockdev
from composer.judge.sealed import luks_tokens

ANNOUNCE = "dps-composer-recovery:"
REDACTED = "[recovery key redacted]"
_MODHEX = "cbdefghijklnrtuv"  # systemd's recovery-key.c
KEY_SHAPE = re.compile(
    rf"(?<![{_MODHEX}])[{_MODHEX}]{{8}}(?:-[{_MODHEX}]{{8}}){{7}}(?![{_MODHEX}])"
)
_SHOWN = re.compile(rf"{ANNOUNCE} /([\w-]+): recovery key: ({KEY_SHAPE.pattern})")
TOKEN_TYPE = "systemd-recovery"
SECTOR = 512
NO_KEY = 2  # cryptsetup(8) EXIT STATUS: "no permission (bad passphrase)"


def redact_text(text: str) -> str:
    """``text`` with every recovery-key-shaped word replaced."""
    return KEY_SHAPE.sub(REDACTED, text)


@dataclass
class RecoveryKeys:
    """The recovery keys the console showed this boot, by volume, in memory only."""

    keys: dict[str, str] = field(default_factory=dict, repr=False)
    shown: dict[str, int] = field(default_factory=dict)  # times each volume's key was shown

    def take(self, line: str) -> str:
        """Remember a shown key; the line as everything else may see it (redacted)."""
        found = _SHOWN.search(line)
        if found:
            name = found.group(1)
            self.keys[name] = found.group(2)
            self.shown[name] = self.shown.get(name, 0) + 1
        return redact_text(line)

    def partial(self, text: str) -> str:
        """An unfinished line: a key may be half written, so drop whatever follows the
        announcement."""
        at = text.find(ANNOUNCE)
        return redact_text(text if at < 0 else text[:at] + ANNOUNCE + " " + REDACTED)


@dataclass(frozen=True)
class Disk:
    """The disk as the VM left it: the image (a writable boot), or the throw-away overlay
    over it."""

    image: Path
    fmt: str
    overlay: Path | None = None

    def slice_name(self, offset: int, size: int) -> str:
        """A qemu-img filename for ``size`` bytes at ``offset`` of the disk (the raw driver's
        offset and size over the disk's own node): one way for every format."""
        opts = blockdev(self.image, self.fmt, read_only=True)
        if self.overlay is not None:
            top = blockdev(self.overlay, "qcow2", read_only=True)
            top["backing"] = opts
            opts = top
        window = {"driver": "raw", "offset": offset, "size": size, "file": opts}
        return "json:" + json.dumps(window)


def recovery_slots(luks_json: str | None) -> list[str]:
    """The keyslots the systemd-recovery tokens of a LUKS2 header name."""
    tokens = luks_tokens(luks_json, TOKEN_TYPE)
    return [str(slot) for t in tokens for slot in t.get("keyslots") or []]


def header_size(luks_json: str | None) -> int | None:
    """Bytes before the data segment (LUKS2 metadata and keyslot areas)."""
    try:
        segment = json.loads(luks_json or "{}")["segments"]["0"]
        return int(segment["offset"])
    except (ValueError, KeyError, TypeError):
        return None


def key_opens(disk: Disk, volume: Mapping[str, Any], key: str, slot: str) -> tuple[bool, str]:
    """Whether ``key`` opens keyslot ``slot`` of the sealed volume the guest described
    (``volume``: its start sector and LUKS2 metadata), and in words why not."""
    size, start = header_size(volume.get("luks")), volume.get("start")
    if size is None or not isinstance(start, int) or start < 0 or not 0 < size <= 1 << 30:
        return False, "the guest did not report where its LUKS2 header is"
    with scratch_dir("recovery", work_parent()) as tmp:  # swept by the next run after a kill
        header = tmp / "header"
        try:
            # the header and a little data: cryptsetup wants a device larger than its header
            window = disk.slice_name(start * SECTOR, size + (1 << 20))
            tools.run(["qemu-img", "convert", "-O", "raw", window, str(header)])
            tools.run(
                ["cryptsetup", "open", "--test-passphrase", "--type", "luks2",
                 "--key-slot", slot, "--key-file", "-", "--", str(header)],
                input=key.encode(),
            )  # fmt: skip
        except ToolError as err:
            if err.tool == "cryptsetup" and err.returncode == NO_KEY:
                return False, f"does not open keyslot {slot} (cryptsetup: {err.stderr_tail})"
            return False, f"could not test it: {err}"
        except ComposerError as err:  # a tool is missing
            return False, f"could not test it: {err}"
    return True, f"opens keyslot {slot}"


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact_text` for a log file's bytes (kept as they are otherwise)."""
    return _KEY_BYTES.sub(REDACTED.encode(), data)


_KEY_BYTES = re.compile(KEY_SHAPE.pattern.encode())


def _volumes(guest: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    found = (guest or {}).get("sealed") or []
    return {str(v.get("name")): v for v in found if isinstance(v, dict)}


def try_shown_keys(
    disk: Disk, guest: Mapping[str, Any] | None, keys: RecoveryKeys
) -> dict[str, tuple[bool, str]]:
    """Each key the console showed, tried on its volume's recovery keyslots; the keys are
    forgotten then."""
    volumes = _volumes(guest)
    opened: dict[str, tuple[bool, str]] = {}
    try:
        for name, key in keys.keys.items():
            volume = volumes.get(name)
            slots = recovery_slots(volume.get("luks")) if volume else []
            if volume is None or not slots:
                continue  # recovery_checks says what is missing
            for slot in slots:
                opened[name] = key_opens(disk, volume, key, slot)
                if opened[name][0]:
                    break
    finally:
        keys.keys.clear()
    return opened


CheckTuple = tuple[str, bool, str]


def _volume_check(
    name: str, volume: Mapping[str, Any] | None, shown: int, opened: tuple[bool, str] | None
) -> CheckTuple:
    check = f"recovery-{name}"
    slots = recovery_slots(volume.get("luks")) if volume else []
    if shown > 1:
        return check, False, f"/{name}: a recovery key was shown {shown} times this boot, not once"
    if shown and not slots:
        return (
            check,
            False,
            (
                f"/{name}: a recovery key was shown, but the volume's LUKS2 header has no "
                f"{TOKEN_TYPE} token"
            ),
        )
    if shown:
        ok, why = opened or (False, "was not tested")
        return (
            check,
            ok,
            (
                f"/{name}: a recovery key was shown once on the console (kept out of the serial "
                f"log) and {why}"
            ),
        )
    if slots:
        return (
            check,
            True,
            (
                f"/{name}: its recovery key was enrolled at an earlier boot (keyslot "
                f"{', '.join(slots)}) and is not shown again"
            ),
        )
    return (
        check,
        False,
        (
            f"/{name}: no recovery key enrolled and none shown (see the unit "
            f"dps-composer-recovery-key@{name}.service)"
        ),
    )


def recovery_checks(
    guest: Mapping[str, Any] | None,
    recovery: str,
    names: list[str],
    keys: RecoveryKeys,
    opened: Mapping[str, tuple[bool, str]],
) -> list[CheckTuple]:
    """``recovery-NAME`` per sealed volume when the image promises a recovery key."""
    if recovery != "console" or guest is None:
        return []
    volumes = _volumes(guest)
    return [_volume_check(n, volumes.get(n), keys.shown.get(n, 0), opened.get(n)) for n in names]
