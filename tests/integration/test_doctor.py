"""`dps-composer doctor` with a fresh KVM probe (a firmware boot under KVM): on a host whose
KVM does not work (this one), the probe says so and what to do; exit 0 or 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration


def test_doctor_probes_kvm_afresh_and_says_what_to_do() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DPS_COMPOSER_ACCEL"}
    done = subprocess.run(
        [sys.executable, "-m", "composer", "doctor", "--json=short"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    findings = json.loads(done.stdout)
    (kvm,) = [f for f in findings if f["check"] == "kvm"]
    assert not kvm["detail"].startswith("not probed"), kvm
    if kvm["status"] == "ok":
        assert kvm["detail"].startswith("usable")
    else:
        assert kvm["detail"].startswith("unusable") and "DPS_COMPOSER_ACCEL=tcg" in kvm["fix"]
    failed = [f for f in findings if f["status"] == "fail"]
    assert done.returncode == (3 if failed else 0), failed
