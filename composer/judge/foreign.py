"""Booting images the composer did not build (no manifest.json beside them).

Such an image has no check unit baked in. If it has cloud-init, a NoCloud seed ISO (volume
label ``cidata``, made with pycdlib) brings the same check script: user-data writes it with
``write_files`` and starts it with ``runcmd`` (as a transient unit, so it can wait for the boot
to finish). Without cloud-init the verdict comes from the serial console alone: a login
prompt, the root file system being mounted, no fatal signs — fewer checks, clearly marked.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from composer import DATA
from composer.core.files import atomic_path
from composer.inspect.image import inspect_image
from composer.inspect.report import Report
from composer.judge.serial import SerialEvent, milestone_times
from composer.judge.verdict import Check, Expectations, Verdict, default_root_type
from composer.spec.arch import by_dps

GUEST_SCRIPT = "/run/dps-composer/check"
SERIAL_NOTE = "serial console only (no in-guest check): fewer checks"
CIDATA_LOGIN_GRACE = 300.0  # cloud-init may not run at all: then judge from the console
SERIAL_LOGIN_GRACE = 5.0
# A getty starts with multi-user.target: a console judged alone that shows no login prompt this
# long after it will not show one (the timeout would only make the same FAIL later).
SERIAL_LOGIN_WAIT = 180.0


def user_data(script: bytes) -> str:
    """#cloud-config that installs the check script and starts it detached from cloud-final."""
    start = (
        f"systemd-run --no-block --unit=dps-composer-check sh {GUEST_SCRIPT} || "
        f"(nohup sh {GUEST_SCRIPT} </dev/null >/dev/null 2>&1 &)"
    )
    config = {
        "write_files": [
            {
                "path": GUEST_SCRIPT,
                "permissions": "0755",
                "encoding": "b64",
                "content": base64.b64encode(script).decode(),
            }
        ],
        "runcmd": [["sh", "-c", start]],
    }
    return "#cloud-config\n" + json.dumps(config, indent=1) + "\n"  # JSON is YAML


def make_cidata(dest: Path, script: bytes | None = None, instance_id: str | None = None) -> Path:
    """A NoCloud seed ISO (ISO 9660 + Rock Ridge + Joliet, volume ``cidata``) at ``dest``."""
    import pycdlib

    script = script if script is not None else (DATA / "check" / "dps-composer-check").read_bytes()
    files = {
        "meta-data": f"instance-id: {instance_id or 'dps-composer-' + uuid.uuid4().hex}\n",
        "user-data": user_data(script),
    }
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="cidata", joliet=3, rock_ridge="1.09")
    try:
        for name, text in files.items():
            data = text.encode()
            iso_name = "/" + name.replace("-", "").upper()[:8] + ".;1"
            iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
        with atomic_path(dest) as tmp:
            iso.write(str(tmp))
    finally:
        iso.close()
    return dest


@dataclass
class ForeignPlan:
    """How a foreign image is booted and judged."""

    mode: str  # "cidata" or "serial"
    reason: str
    expectations: Expectations
    report: Report
    notes: list[str] = field(default_factory=list)

    @property
    def login_grace(self) -> float:
        return CIDATA_LOGIN_GRACE if self.mode == "cidata" else SERIAL_LOGIN_GRACE

    @property
    def login_wait(self) -> float | None:
        """cidata: the check may come without a prompt on this console, so no limit."""
        return SERIAL_LOGIN_WAIT if self.mode == "serial" else None


def plan_foreign(image: Path) -> ForeignPlan:
    """Inspect the image offline and decide: check via cidata, or judge the console only."""
    report = inspect_image(image)
    picked = report.discovery.root if report.discovery else None
    root = next((p for p in report.partitions if p.number == picked), None)
    found = by_dps(root.arch) if root and root.arch else None
    arch = found.name if found else "x86_64"
    # one UKI on the ESP: its PCR 11 is predicted offline and reported (never enforced)
    ukis = {b.pcr11 for b in report.efi if b.kind == "uki" and b.pcr11}
    reported = {11: ukis.pop()} if len(ukis) == 1 else {}
    exp = Expectations(default_root_type(arch), architecture=arch, reported_pcrs=reported)
    notes = [f"no manifest.json: foreign image; expectations are the DPS defaults for {arch}"]
    if report.discovery and not report.discovery.ok:
        notes += [f"inspect: {p}" for p in report.discovery.problems]
    if report.cloud_init is False:
        return ForeignPlan("serial", "no cloud-init in the image", exp, report, notes)
    why = "cloud-init found" if report.cloud_init else "cloud-init unknown (root not read)"
    return ForeignPlan("cidata", why, exp, report, notes)


def judge_serial(events: Sequence[SerialEvent], exp: Expectations) -> Verdict:
    """The verdict from the console alone: booted to a login prompt, root mounted, no fatal
    sign. Every check says it was judged from the serial console."""
    seen = {e.name: e for e in events if e.kind == "milestone"}
    fatal = [e for e in events if e.kind == "fatal"]
    login = seen.get("login")
    root = seen.get("root-mounted")
    # the watch ends early for want of a prompt and says so (composer/judge/monitor.py)
    no_login = next((e.line for e in fatal if e.name == "no-login"), "no login prompt")
    checks = [
        Check(
            "booted",
            login is not None,
            f"login prompt at {login.t:.1f} s ({SERIAL_NOTE})"
            if login
            else f"{no_login} on the serial console ({SERIAL_NOTE})",
        ),
        Check(
            "root-mounted",
            root is not None,
            f"{root.line} at {root.t:.1f} s ({SERIAL_NOTE})"
            if root
            else f"no message about mounting the root file system ({SERIAL_NOTE})",
        ),
    ]
    for e in fatal:
        if not any(c.name == e.check for c in checks):
            checks.append(Check(e.check or e.name, False, f"{e.line} at {e.t:.1f} s"))
    verdict = Verdict(
        passed=all(c.passed for c in checks), checks=checks, timings=milestone_times(events)
    )
    verdict.notes.append(f"judged from the {SERIAL_NOTE}; root type expected: {exp.root_type_uuid}")
    return verdict
