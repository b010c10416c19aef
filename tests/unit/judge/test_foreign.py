"""Foreign images: the NoCloud cidata ISO and the serial-only verdict."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pycdlib

from composer import DATA
from composer.judge.foreign import GUEST_SCRIPT, judge_serial, make_cidata, user_data
from composer.judge.serial import SerialEvent, scan_text
from composer.judge.verdict import Expectations

ROOT = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"


def read_iso(path: Path) -> tuple[str, dict[str, bytes]]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files = {}
        for name in ("user-data", "meta-data"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue()
            joliet = io.BytesIO()
            iso.get_file_from_iso_fp(joliet, joliet_path=f"/{name}")
            assert joliet.getvalue() == files[name]
        return label, files
    finally:
        iso.close()


def test_cidata_iso_carries_the_check(tmp_path: Path) -> None:
    iso = make_cidata(tmp_path / "cidata.iso", instance_id="test-1")
    label, files = read_iso(iso)
    assert label == "cidata"
    assert files["meta-data"] == b"instance-id: test-1\n"
    text = files["user-data"].decode()
    assert text.startswith("#cloud-config\n")
    config = json.loads(text.split("\n", 1)[1])  # JSON is YAML: cloud-init reads it as is
    (entry,) = config["write_files"]
    assert entry["path"] == GUEST_SCRIPT and entry["encoding"] == "b64"
    script = (DATA / "check" / "dps-composer-check").read_bytes()
    assert base64.b64decode(entry["content"]) == script
    assert "systemd-run --no-block" in config["runcmd"][0][2]
    assert not list(tmp_path.glob(".*tmp"))


def test_user_data_runs_the_script_it_writes() -> None:
    config = json.loads(user_data(b"#!/bin/sh\necho hi\n").split("\n", 1)[1])
    assert GUEST_SCRIPT in config["runcmd"][0][2]


LOGIN_BOOT = (
    "BdsDxe: loading Boot0001\n[    0.000000] Linux version 6.12.0\n"
    "[  OK  ] Mounted sysroot.mount - /sysroot.\n"
    "[  OK  ] Reached target multi-user.target - Multi-User System.\n"
    "\nDebian GNU/Linux 13 host ttyS0\n\nhost login: "
)


def test_serial_verdict_from_a_login_prompt() -> None:
    v = judge_serial(scan_text(LOGIN_BOOT, 5.0), Expectations(ROOT))
    assert v.passed, v.to_json()
    assert [c.name for c in v.checks] == ["booted", "root-mounted"]
    assert all("serial console only" in c.detail for c in v.checks)
    assert v.timings["login"] == 5.0
    assert any("serial console only" in n for n in v.notes)


def test_serial_verdict_names_root_failures() -> None:
    text = (
        "[    0.000000] Linux version 6.12.0\n"
        "[ TIME ] Timed out waiting for device dev-gpt\\x2dauto\\x2droot.device\n"
        "You are in emergency mode.\n"
    )
    v = judge_serial(scan_text(text), Expectations(ROOT))
    assert not v.passed
    failed = {c.name for c in v.checks if not c.passed}
    assert {"booted", "root-mounted", "root-discovered"} <= failed


def test_serial_verdict_says_the_watch_ended_for_want_of_a_prompt() -> None:
    """The monitor stopped waiting a while after multi-user.target (composer/judge/boot.py
    turns that into a "no-login" event): the booted check says how long it waited."""
    events = scan_text(LOGIN_BOOT.rsplit("\n", 1)[0] + "\n", 5.0)
    line = "no login prompt within 180 s of multi-user.target"
    v = judge_serial(
        [*events, SerialEvent("fatal", "no-login", 190.0, line, "booted")], Expectations(ROOT)
    )
    assert not v.passed
    booted = v.check("booted")
    assert booted is not None and not booted.passed
    assert booted.detail.startswith(line + " on the serial console (serial console only")
    assert [c.name for c in v.checks] == ["booted", "root-mounted"]
