"""Recovery keys of sealed volumes: taken off the console line before anything else sees it,
redacted from kept logs, tested against a real LUKS2 header (cryptsetup on a file: no device,
no root), and judged."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from composer.judge.monitor import monitor
from composer.judge.qemu import QemuProcess
from composer.judge.recovery import (
    REDACTED,
    Disk,
    RecoveryKeys,
    key_opens,
    recovery_checks,
    redact_bytes,
    redact_text,
    try_shown_keys,
)
from composer.judge.serial import SerialScanner

KEY = "-".join(["cbdefghi", "jklnrtuv", "vutrnlkj", "ihgfedcb"] * 2)
OTHER = "-".join(["bbbbbbbb"] * 8)
SHOWN = f"dps-composer-recovery: /srv: recovery key: {KEY}"
MiB = 1 << 20


def test_a_shown_key_is_remembered_and_the_line_redacted() -> None:
    keys = RecoveryKeys()
    line = keys.take(f"[  41.2] {SHOWN}")
    assert KEY not in line and line.endswith(f"recovery key: {REDACTED}")
    assert keys.keys == {"srv": KEY} and keys.shown == {"srv": 1}
    assert KEY not in repr(keys)


def test_any_key_shaped_text_is_redacted_and_nothing_else() -> None:
    assert redact_text(f"x {OTHER} y") == f"x {REDACTED} y"
    near = "cbdefghi-" * 7 + "cbdefgh"  # one character short
    assert redact_text(near) == near
    assert redact_bytes(f"\xff{KEY}\n".encode("latin-1")) == f"\xff{REDACTED}\n".encode("latin-1")


def test_a_half_written_key_line_is_cut_at_the_announcement() -> None:
    keys = RecoveryKeys()
    partial = keys.partial(f"dps-composer-recovery: /srv: recovery key: {KEY[:20]}")
    assert KEY[:20] not in partial and REDACTED in partial
    assert keys.keys == {}  # only a whole line counts as shown


def test_the_monitor_passes_on_only_redacted_console_lines(tmp_path: Path) -> None:
    """A guest (a shell script in QEMU's place) shows a key; the scanner's tail and events
    never hold it, the key is remembered."""
    console, check = tmp_path / "serial.log", tmp_path / "check.log"
    console.write_bytes(b"")
    check.write_bytes(b"")
    script = f"printf '%s\\nhost login: ' '{SHOWN}' >> {console}; sleep 30"
    scanner = SerialScanner()
    with QemuProcess(["sh", "-c", script], tmp_path / "qemu.log", term_grace=1.0) as qemu:
        monitor(qemu, console, check, scanner, 30.0, lambda _: None, login_grace=0.2)
    assert any(REDACTED in line for line in scanner.tail)
    assert not any(KEY in line for line in scanner.tail)
    assert not any(KEY in e.line for e in scanner.events)
    assert scanner.recovery.keys == {"srv": KEY}


def luks_volume(
    tmp_path: Path, key: str, start: int = MiB // 512, disk_size: int = 24 * MiB
) -> tuple[Disk, dict[str, object]]:
    """A (sparse) disk file with a LUKS2 volume at sector ``start`` whose keyslot 0 opens with
    ``key``, as the guest's check record describes it."""
    part = tmp_path / "part"
    part.write_bytes(b"")
    subprocess.run(["truncate", "-s", "20M", str(part)], check=True)
    subprocess.run(
        ["cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--pbkdf", "pbkdf2",
         "--pbkdf-force-iterations", "1000", "--key-file", "-", str(part)],
        input=key.encode(), check=True,
    )  # fmt: skip
    luks = subprocess.run(
        ["cryptsetup", "luksDump", "--dump-json-metadata", str(part)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    disk = tmp_path / "disk.raw"
    with disk.open("wb") as fh:
        fh.truncate(disk_size)
        fh.seek(start * 512)
        fh.write(part.read_bytes())
    return Disk(disk, "raw"), {"name": "srv", "start": start, "luks": luks}


@pytest.fixture
def cryptsetup() -> None:
    if subprocess.run(["sh", "-c", "command -v cryptsetup"], capture_output=True).returncode:
        pytest.skip("cryptsetup-bin is not installed (scripts/apt-packages.txt)")


@pytest.mark.usefixtures("cryptsetup")
def test_a_key_is_tested_against_the_header_on_the_disk(tmp_path: Path) -> None:
    disk, volume = luks_volume(tmp_path, KEY)
    assert key_opens(disk, volume, KEY, "0") == (True, "opens keyslot 0")
    ok, why = key_opens(disk, volume, OTHER, "0")
    assert not ok and why.startswith("does not open keyslot 0")
    assert OTHER not in why and KEY not in why


@pytest.mark.usefixtures("cryptsetup")
def test_a_volume_at_the_end_of_a_big_disk_unaligned(tmp_path: Path) -> None:
    """Where systemd-repart puts it: after the root, near the end of a 2 GiB disk."""
    disk, volume = luks_volume(tmp_path, KEY, start=4061185, disk_size=2 << 30)
    assert key_opens(disk, volume, KEY, "0") == (True, "opens keyslot 0")


@pytest.mark.usefixtures("cryptsetup")
def test_shown_keys_are_tried_on_the_recovery_slots_and_forgotten(tmp_path: Path) -> None:
    disk, volume = luks_volume(tmp_path, KEY)
    meta = json.loads(str(volume["luks"]))
    meta["tokens"] = {"0": {"type": "systemd-recovery", "keyslots": ["0"]}}
    volume["luks"] = json.dumps(meta)
    keys = RecoveryKeys()
    keys.take(SHOWN)
    opened = try_shown_keys(disk, {"sealed": [volume]}, keys)
    assert opened == {"srv": (True, "opens keyslot 0")} and keys.keys == {}
    (check,) = recovery_checks({"sealed": [volume]}, "console", ["srv"], keys, opened)
    assert check[0] == "recovery-srv" and check[1], check
    assert "shown once on the console" in check[2]


@pytest.mark.usefixtures("cryptsetup")
def test_a_disk_overlay_is_read_through_to_its_base(tmp_path: Path) -> None:
    disk, volume = luks_volume(tmp_path, KEY)
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(overlay), "24M"], check=True)
    assert key_opens(Disk(disk.image, "raw", overlay), volume, KEY, "0")[0]


def record(*tokens: Mapping[str, object]) -> dict[str, object]:
    luks = json.dumps({"tokens": {str(i): t for i, t in enumerate(tokens)}})
    return {"sealed": [{"name": "srv", "start": 2048, "luks": luks}]}


RECOVERY_TOKEN = {"type": "systemd-recovery", "keyslots": ["1"]}
TPM_TOKEN = {"type": "systemd-tpm2", "keyslots": ["0"]}


def judged(
    guest: dict[str, object], shown: int = 0, opened: tuple[bool, str] | None = None
) -> tuple[bool, str]:
    keys = RecoveryKeys(shown={"srv": shown} if shown else {})
    (check,) = recovery_checks(guest, "console", ["srv"], keys, {"srv": opened} if opened else {})
    return check[1], check[2]


def test_judged_per_boot() -> None:
    both = record(TPM_TOKEN, RECOVERY_TOKEN)
    assert judged(both, 1, (True, "opens keyslot 1")) == (
        True,
        "/srv: a recovery key was shown once on the console (kept out of the serial log) and "
        "opens keyslot 1",
    )
    assert judged(both, 1, (False, "does not open keyslot 1 (…)"))[0] is False
    assert judged(both) == (
        True,
        "/srv: its recovery key was enrolled at an earlier boot (keyslot 1) and is not shown again",
    )
    assert judged(both, 2, (True, "opens keyslot 1")) == (
        False,
        "/srv: a recovery key was shown 2 times this boot, not once",
    )
    shown_not_enrolled = judged(record(TPM_TOKEN), 1, (True, "x"))
    assert shown_not_enrolled[0] is False and "no systemd-recovery token" in shown_not_enrolled[1]
    neither = judged(record(TPM_TOKEN))
    assert neither[0] is False and "no recovery key enrolled and none shown" in neither[1]


def test_no_check_without_the_promise_or_a_result() -> None:
    keys = RecoveryKeys()
    assert recovery_checks(record(), "none", ["srv"], keys, {}) == []
    assert recovery_checks(None, "console", ["srv"], keys, {}) == []
