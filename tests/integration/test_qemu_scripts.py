"""qemu-scripts/boot-uefi.sh boots the default image with OVMF and swtpm, no Python involved."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from composer.judge.emulator import choose_boot_tools
from composer.judge.record import RecordReader
from composer.spec.arch import ARCHES

from .conftest import ROOT

pytestmark = pytest.mark.integration
NAME = "debian-uki-sdboot"


def test_boot_uefi_script_sees_the_check_line(default_image: Path, tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    # the QEMU, OVMF and swtpm `dps-composer boot` takes (the boot tools tree's QEMU 10 runs
    # the guest with two vCPUs under TCG); the host's where the composer would take those
    tools, _ = choose_boot_tools("", ARCHES["x86_64"], print)
    tools_root = [] if tools.root is None else ["--tools-root", str(tools.root)]
    # as many vCPUs as `boot` gives a VM here (conftest: one when the workers fill the cores)
    vcpus = os.environ.get("DPS_COMPOSER_VCPUS")
    smp = ["--smp", vcpus] if vcpus else []
    proc = subprocess.run(
        [
            "sh",
            str(ROOT / "qemu-scripts" / "boot-uefi.sh"),
            str(default_image / f"{NAME}.qcow2"),
            "--tpm",
            "--check",
            "--accel",
            "tcg",
            "--timeout",
            "900",
            "--serial-log",
            str(log),
            *tools_root,
            *smp,
        ],
        text=True,
        capture_output=True,
        timeout=1000,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR": str(tmp_path)},
    )
    print(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    if tools.root is not None:  # the tree's firmware descriptor was the one taken
        assert f"firmware: {tools.root}/usr/share/qemu/firmware/" in proc.stderr, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    record = RecordReader().feed(line)  # --check waits for the whole, verified record
    assert record is not None and record.framed and record.payload is not None, line
    payload = json.loads(record.payload)
    assert payload["root"]["parttype"] == "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
    assert payload["tpm"]["tpm0"] is True  # the script's swtpm
    assert "Linux version" in log.read_text(errors="replace")
    # everything it started is gone: no work directory, no swtpm, no QEMU left behind
    assert not list(tmp_path.glob("boot-uefi.*"))
    ps = subprocess.run(["ps", "-eo", "args"], text=True, capture_output=True).stdout
    assert str(default_image / f"{NAME}.qcow2") not in ps
    assert str(tmp_path) not in ps  # swtpm's state lived under TMPDIR
