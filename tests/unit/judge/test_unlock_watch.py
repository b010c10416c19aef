"""A sealed volume the TPM refused, from the console of a real boot (a disk whose /srv was
sealed to one PCR key, booted with a UKI signed by another; systemd 257, console as `boot`
captures it)."""

from __future__ import annotations

from composer.judge.serial import SerialScanner, scan_text
from composer.judge.verdict import Expectations, judge

REFUSED = """\
         Starting systemd-cryptsetup@srv.se…ice - Cryptography Setup for srv...
[   38.322491] systemd-cryptsetup[470]: Failed to unseal secret using TPM2: No such device or address
[   38.328256] systemd-cryptsetup[470]: Set cipher aes, mode xts-plain64, key size 512 bits for device /dev/disk/by-partlabel/dps-sealed-srv.
[   38.857079] systemd-cryptsetup[470]: Failed to unseal secret using TPM2: No such device or address
[   38.869704] systemd-cryptsetup[470]: No TPM2 metadata matching the current system state found in LUKS2 header, falling back to traditional unlocking.
[   38.871455] systemd-cryptsetup[470]: No passphrase or recovery key registered.
[FAILED] Failed to start systemd-cryptsetup…rvice - Cryptography Setup for srv.
See 'systemctl status systemd-cryptsetup@srv.service' for details.
[DEPEND] Dependency failed for srv.mount - Server Data Partition.
[DEPEND] Dependency failed for local-fs.target - Local File Systems.
You are in emergency mode. After logging in, type "journalctl -xb" to view
"""  # noqa: E501
ROOT = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"


def test_a_refused_unlock_is_a_fatal_sign_naming_the_volume_and_the_reason() -> None:
    (sign,) = [e for e in scan_text(REFUSED) if e.name == "sealed-unlock"]
    assert sign.kind == "fatal" and sign.check == "sealed-srv"
    assert sign.line.startswith("/srv: not unlocked")
    assert "No TPM2 metadata matching the current system state" in sign.line
    assert "Set cipher" not in sign.line and sign.line.count("Failed to unseal") == 1


def test_the_verdict_fails_the_sealed_volume_check() -> None:
    verdict = judge(None, scan_text(REFUSED), Expectations(root_type_uuid=ROOT))
    failed = {c.name: c.detail for c in verdict.checks if not c.passed}
    assert not verdict.passed and "/srv" in failed["sealed-srv"]


def test_other_failed_units_are_not_sealed_volumes() -> None:
    text = "[FAILED] Failed to start systemd-repart.service - Repartition Root Disk.\n"
    assert not [e for e in scan_text(text) if e.name == "sealed-unlock"]


def test_an_untruncated_unit_name_is_read_too() -> None:
    text = "[FAILED] Failed to start systemd-cryptsetup@home.service.\n"
    (sign,) = [e for e in scan_text(text) if e.name == "sealed-unlock"]
    assert sign.check == "sealed-home" and "no reason" in sign.line


# a volume with a recovery key: systemd-cryptsetup asks for it (systemd 257's words); the
# prompt waits without a line end
ASKS = """\
[   38.869704] systemd-cryptsetup[470]: No TPM2 metadata matching the current system state found in LUKS2 header, falling back to traditional unlocking.
🔐 Please enter recovery key for disk QEMU_HARDDISK (srv): """  # noqa: E501


def test_asking_for_the_recovery_key_is_a_refused_unlock_even_unfinished() -> None:
    scanner = SerialScanner()
    done, prompt = ASKS.split("\n")
    scanner.feed(done, 1.0)
    for t in (2.0, 2.25, 2.5):  # each poll hands the unfinished prompt on again
        scanner.feed(prompt, t, remember=False)
    (sign,) = [e for e in scanner.events if e.name == "sealed-unlock"]
    assert sign.check == "sealed-srv" and sign.line.startswith("/srv: not unlocked")
    assert "No TPM2 metadata matching the current system state" in sign.line
    assert sign.line.endswith("it asks for the volume's recovery key on the console")
    assert "passphrase-prompt" in {e.name for e in scanner.events}
