"""A boot that fails before its VM starts: its error is kept beside the image like a verdict,
and its work directory goes. (No VM runs: the varstore cannot be copied.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composer.core.errors import ComposerError
from composer.image.firmware import FirmwareNotFound
from composer.judge.boot import boot_image
from composer.judge.verdict import Expectations

ROOT = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"


def test_setup_error_is_kept_and_leaves_no_work_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    monkeypatch.setenv("DPS_COMPOSER_WORK_DIR", str(work))
    image = tmp_path / "x.raw"
    image.write_bytes(b"\0" * 4096)
    keep = tmp_path / "x.raw.boot"
    lines: list[str] = []
    try:
        with pytest.raises(ComposerError, match="cannot copy the varstore"):
            boot_image(
                image,
                expectations=Expectations(ROOT),
                accel="tcg",
                vars_file=tmp_path / "missing.fd",
                keep_dir=keep,
                console=lines.append,
            )
    except FirmwareNotFound:
        pytest.skip("no OVMF firmware descriptor on this machine")
    verdict = json.loads((keep / "verdict.json").read_text())
    assert verdict["outcome"] == "error" and verdict["passed"] is False
    assert verdict["checks"][0]["detail"].startswith("could not boot: cannot copy the varstore")
    assert f"kept: {keep}" in lines
    assert list(work.iterdir()) == []  # the scratch directory went


def test_default_vcpus_follow_the_emulator() -> None:
    """QEMU 7.2 (the host's) crashed x86 guests with two vCPUs under TCG: one; the tree's QEMU
    10 gets VCPUS_TCG_TREE; KVM always two."""
    from composer.judge.boot import VCPUS_TCG_TREE, default_smp
    from composer.toolchain.boottools import HOST, BootTools

    tree = BootTools(Path("/cache/trees/boot-x"))
    assert default_smp("tcg", HOST) == 1
    assert default_smp("tcg", tree) == VCPUS_TCG_TREE == 2
    assert default_smp("kvm", HOST) == default_smp("kvm", tree) == 2
