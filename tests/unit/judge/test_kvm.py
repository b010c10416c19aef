"""Accelerator decisions and the KVM probe cache (no /dev/kvm, no QEMU needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composer.core.errors import ComposerError
from composer.image.firmware import Firmware
from composer.judge.kvm import (
    CACHE_TTL,
    KVM_ARGS,
    KvmProbe,
    choose_accel,
    kvm_api_version,
    load_cached,
    resolve_accel,
    store_cached,
)

OK = KvmProbe(True, "OVMF reached BdsDxe under KVM", 1.2, "6.1.0", "QEMU 7.2", 1000.0)
BAD = KvmProbe(False, "qemu: KVM internal error. Suberror: 1", 0.3, "6.1.0", "QEMU 7.2", 1000.0)
FW = Firmware(
    descriptor=Path("/nonexistent/60.json"),
    description="test",
    arch="x86_64",
    machine="q35",
    code=Path("/nonexistent/CODE.fd"),
    code_format="raw",
    vars_template=Path("/nonexistent/VARS.fd"),
    vars_format="raw",
    features=frozenset(),
    requires_smm=False,
)


def test_auto_uses_kvm_when_probe_passed() -> None:
    accel = choose_accel("auto", OK)
    assert accel.name == "kvm" and accel.args == ("-accel", "kvm", "-cpu", "host")


def test_auto_falls_back_to_tcg_with_probe_reason() -> None:
    accel = choose_accel("auto", BAD)
    assert accel.name == "tcg" and accel.args == ("-accel", "tcg", "-cpu", "max")
    assert "KVM internal error" in accel.reason


def test_auto_without_probe_is_tcg() -> None:
    assert choose_accel("auto", None).name == "tcg"


def test_forced_choices_ignore_probe() -> None:
    assert choose_accel("tcg", OK).name == "tcg"
    forced = choose_accel("kvm", BAD)
    assert forced.name == "kvm" and "warning" in forced.reason
    assert choose_accel("kvm", None).reason == "KVM requested"


def test_unknown_accel_is_an_error() -> None:
    with pytest.raises(ComposerError, match="unknown accelerator"):
        choose_accel("hvf", None)


def test_env_override_applies_to_auto_without_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPS_COMPOSER_ACCEL", "tcg")
    assert resolve_accel("auto", FW).name == "tcg"  # no probe: FW's files do not even exist
    monkeypatch.setenv("DPS_COMPOSER_ACCEL", "kvm")
    assert resolve_accel("auto", FW).name == "kvm"
    assert resolve_accel("tcg", FW).name == "tcg"  # an explicit request wins over the env
    monkeypatch.setenv("DPS_COMPOSER_ACCEL", "bogus")
    with pytest.raises(ComposerError):
        resolve_accel("auto", FW)


def test_cache_roundtrip_key_and_ttl(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "kvm-probe.json"
    store_cached(path, BAD)
    hit = load_cached(path, "6.1.0", "QEMU 7.2", now=1000.0 + 60)
    assert hit is not None and hit.cached and hit.reason == BAD.reason and not hit.usable
    assert load_cached(path, "6.2.0", "QEMU 7.2", now=1060.0) is None  # other kernel
    assert load_cached(path, "6.1.0", "QEMU 8.0", now=1060.0) is None  # other QEMU
    assert load_cached(path, "6.1.0", "QEMU 7.2", now=1000.0 + CACHE_TTL + 1) is None
    store_cached(path, KvmProbe(True, "ok", 1.0, "6.2.0", "QEMU 7.2", 2000.0))
    assert len(json.loads(path.read_text())) == 2


def test_corrupt_cache_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "kvm-probe.json"
    path.write_text("[1, 2")
    assert load_cached(path, "6.1.0", "QEMU 7.2", now=1000.0) is None
    store_cached(path, OK)  # and gets replaced
    assert load_cached(path, "6.1.0", "QEMU 7.2", now=1000.0) == KvmProbe(
        **{**OK.__dict__, "cached": True}
    )


def test_api_version_ioctl_on_a_non_kvm_device_fails() -> None:
    with pytest.raises(OSError):
        kvm_api_version("/dev/null")


def test_an_x86_guest_under_tcg_gets_no_virtualization_extensions() -> None:
    """With svm the guest loads kvm and kvm_amd while its check runs; other architectures keep
    "max" as it is (svm and vmx are x86 properties)."""
    for arch in ("x86_64", "i386"):
        assert choose_accel("tcg", None, arch).args == (
            "-accel", "tcg", "-cpu", "max,svm=off,vmx=off"
        )  # fmt: skip
        assert choose_accel("auto", BAD, arch).args[-1] == "max,svm=off,vmx=off"
        assert choose_accel("auto", OK, arch).args == KVM_ARGS  # KVM: the host's CPU
    assert choose_accel("tcg", None, "aarch64").args == ("-accel", "tcg", "-cpu", "max")
