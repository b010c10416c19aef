"""`dps-composer doctor` through the real command line: every check on this host, what to set
when a directory is unusable, exit 0 or 3. With DPS_COMPOSER_ACCEL=tcg, as the user who set it
would expect, there is no KVM probe (it starts a VM; tests/integration/test_doctor.py makes
one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..cli_run import ROOT
from .test_json import check


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "composer", "doctor", "--json=short"],
        cwd=ROOT,
        env={**os.environ, "DPS_COMPOSER_ACCEL": "tcg", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_check_reports(tmp_path: Path) -> None:
    done = doctor({"DPS_COMPOSER_WORK_DIR": str(tmp_path / "work")})
    findings = json.loads(done.stdout)
    check("doctor", findings)
    checks = {f["check"] for f in findings}
    assert {"swtpm", "libguestfs", "work space", "cache space", "kvm"} <= checks
    assert any(c.startswith("firmware") for c in checks)
    assert all(f["status"] in ("ok", "warn", "fail") for f in findings)
    (kvm,) = [f for f in findings if f["check"] == "kvm"]
    assert kvm["detail"] == "not probed: DPS_COMPOSER_ACCEL=tcg (boots use TCG)", kvm
    failed = [f for f in findings if f["status"] == "fail"]
    assert done.returncode == (3 if failed else 0), failed


def test_an_unusable_work_directory_fails_with_what_to_set(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = doctor({"DPS_COMPOSER_WORK_DIR": str(blocker / "work")})
    assert done.returncode == 3
    (work,) = [f for f in json.loads(done.stdout) if f["check"] == "work space"]
    assert work["status"] == "fail" and "DPS_COMPOSER_WORK_DIR" in work["fix"]
    assert "FAIL work space:" in done.stderr


def test_what_is_not_ok_says_what_to_do(tmp_path: Path) -> None:
    done = doctor({"DPS_COMPOSER_WORK_DIR": str(tmp_path / "work")})
    for f in json.loads(done.stdout):
        if f["status"] == "fail" or (f["status"] == "warn" and f["check"] != "kvm"):
            assert f["fix"], f
        if f["check"] == "kvm" and f["status"] == "warn" and "unusable" in f["detail"]:
            assert "DPS_COMPOSER_ACCEL=tcg" in f["fix"]
