"""Firmware descriptor selection (QEMU docs/interop/firmware.json rules) on fixture files."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from composer.core.errors import ComposerError
from composer.image.firmware import (
    FirmwareNotFound,
    find_firmware,
    list_descriptors,
    machine_matches,
    select_firmware,
)
from composer.judge.qemu import QemuConfig, build_command, firmware_args, machine_args
from composer.spec.arch import get_arch

X86 = get_arch("x86_64")


def descriptor(
    tmp: Path,
    *,
    arch: str = "x86_64",
    machines: tuple[str, ...] = ("pc-q35-*",),
    features: tuple[str, ...] = (),
    code: str = "CODE.fd",
    template: str | None = "VARS.fd",
    mode: str | None = None,
) -> dict[str, Any]:
    for name in (code, template):
        if name:
            (tmp / name).write_bytes(b"\0" * 16)
    mapping: dict[str, Any] = {
        "device": "flash",
        "executable": {"filename": str(tmp / code), "format": "raw"},
    }
    if template:
        mapping["nvram-template"] = {"filename": str(tmp / template), "format": "raw"}
    if mode:
        mapping["mode"] = mode
    return {
        "description": f"test {code}",
        "interface-types": ["uefi"],
        "mapping": mapping,
        "targets": [{"architecture": arch, "machines": list(machines)}],
        "features": list(features),
        "tags": [],
    }


def write(d: Path, name: str, data: dict[str, Any] | None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    path.write_text("" if data is None else json.dumps(data))
    return path


@pytest.fixture
def debian_like(tmp_path: Path) -> Path:
    """The three descriptors Debian's ovmf ships, with their feature sets."""
    d = tmp_path / "share"
    sb = ("acpi-s3", "requires-smm", "secure-boot")
    write(
        d,
        "40-sb-enrolled.json",
        descriptor(tmp_path, features=(*sb, "enrolled-keys"), code="MS.fd", template="VARS.ms.fd"),
    )
    write(d, "50-sb.json", descriptor(tmp_path, features=sb, code="SB.fd"))
    write(
        d,
        "60-plain.json",
        descriptor(tmp_path, machines=("pc-i440fx-*", "pc-q35-*"), code="PLAIN.fd"),
    )
    return d


def test_plain_firmware_skips_secure_boot(debian_like: Path) -> None:
    fw, rejected = find_firmware(X86, "q35", secure_boot=False, dirs=[debian_like])
    assert fw is not None and fw.code.name == "PLAIN.fd"
    assert not fw.requires_smm and not fw.secure_boot
    assert [r.code for r in rejected] == ["secure-boot-unwanted"] * 2


def test_secure_boot_takes_first_sorted_match(debian_like: Path) -> None:
    fw = select_firmware(X86, "q35", secure_boot=True, dirs=[debian_like])
    assert fw.descriptor.name == "40-sb-enrolled.json"
    assert fw.requires_smm and "enrolled-keys" in fw.features
    assert fw.vars_template.name == "VARS.ms.fd"


def test_enrolled_keys_false_wants_empty_varstore(debian_like: Path) -> None:
    fw, rejected = find_firmware(X86, "q35", True, enrolled_keys=False, dirs=[debian_like])
    assert fw is not None and fw.descriptor.name == "50-sb.json"
    assert [r.code for r in rejected] == ["enrolled-keys-unwanted"]


def test_enrolled_keys_true_requires_feature(tmp_path: Path) -> None:
    d = tmp_path / "d"
    write(d, "50-sb.json", descriptor(tmp_path, features=("secure-boot", "requires-smm")))
    fw, rejected = find_firmware(X86, "q35", True, enrolled_keys=True, dirs=[d])
    assert fw is None and rejected[0].code == "no-enrolled-keys"


def test_wrong_arch_and_machine(tmp_path: Path) -> None:
    d = tmp_path / "d"
    write(d, "10-arm.json", descriptor(tmp_path, arch="aarch64", machines=("virt-*",)))
    write(d, "20-i440fx.json", descriptor(tmp_path, machines=("pc-i440fx-*",)))
    with pytest.raises(FirmwareNotFound) as err:
        select_firmware(X86, "q35", secure_boot=False, dirs=[d])
    reasons = {r.descriptor.name: r for r in err.value.rejections}
    assert reasons["10-arm.json"].code == "no-target"
    assert "architecture x86_64" in reasons["10-arm.json"].reason
    assert "machine q35" in reasons["20-i440fx.json"].reason
    assert "10-arm.json" in str(err.value) and "20-i440fx.json" in str(err.value)
    fw = select_firmware(get_arch("aarch64"), "virt", secure_boot=False, dirs=[d])
    assert fw.arch == "aarch64" and fw.machine == "virt"
    # q35's devices switched off (smbus, sata, ...) are not properties of virt: none given
    assert machine_args(fw) == ["-machine", "virt,pflash0=pflash0,pflash1=pflash1"]


def test_missing_nvram_template_and_combined_mode(tmp_path: Path) -> None:
    d = tmp_path / "d"
    write(d, "10-no-template.json", descriptor(tmp_path, template=None))
    write(d, "20-combined.json", descriptor(tmp_path, mode="combined"))
    write(d, "30-missing-file.json", descriptor(tmp_path, code="GONE.fd"))
    (tmp_path / "GONE.fd").unlink()
    write(d, "40-broken.json", None)
    (d / "40-broken.json").write_text("{not json")
    fw, rejected = find_firmware(X86, "q35", False, dirs=[d])
    assert fw is None
    assert [r.code for r in rejected] == [
        "no-nvram-template",
        "not-split",
        "missing-file",
        "invalid",
    ]


def test_later_dir_overrides_same_name(tmp_path: Path, debian_like: Path) -> None:
    etc = tmp_path / "etc"
    write(etc, "60-plain.json", descriptor(tmp_path, code="ADMIN.fd"))
    fw = select_firmware(X86, "q35", False, dirs=[debian_like, etc])
    assert fw.code.name == "ADMIN.fd" and fw.descriptor.parent == etc


def test_empty_file_hides(tmp_path: Path, debian_like: Path) -> None:
    user = tmp_path / "user"
    write(user, "40-sb-enrolled.json", None)
    fw, rejected = find_firmware(X86, "q35", True, dirs=[debian_like, tmp_path / "none", user])
    assert fw is not None and fw.descriptor.name == "50-sb.json"
    assert rejected[0].code == "hidden" and rejected[0].descriptor.parent == user
    paths, _ = list_descriptors([debian_like, user])
    assert [p.name for p in paths] == ["50-sb.json", "60-plain.json"]


def test_sorted_by_name_across_dirs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "70-late.json", descriptor(tmp_path, code="LATE.fd"))
    write(b, "30-early.json", descriptor(tmp_path, code="EARLY.fd"))
    assert select_firmware(X86, "q35", False, dirs=[a, b]).code.name == "EARLY.fd"


def test_not_found_without_descriptors(tmp_path: Path) -> None:
    with pytest.raises(FirmwareNotFound, match="no descriptor files found"):
        select_firmware(X86, "q35", False, dirs=[tmp_path / "nothing"])


@pytest.mark.parametrize(
    ("machine", "globs", "ok"),
    [
        ("q35", ["pc-q35-*"], True),
        ("pc-q35-7.2", ["pc-q35-*"], True),
        ("pc-q35-7.2", ["pc-i440fx-*"], False),
        ("q35", ["pc-i440fx-*"], False),
        ("pc", ["pc-i440fx-*"], True),
        ("virt", ["virt-*"], True),
        ("virt-8.0", ["virt-7.*"], False),
    ],
)
def test_machine_matches(machine: str, globs: list[str], ok: bool) -> None:
    assert machine_matches(machine, globs) is ok


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
def test_qemu_command_for_secure_boot_firmware(debian_like: Path, tmp_path: Path) -> None:
    fw = select_firmware(X86, "q35", secure_boot=True, dirs=[debian_like])
    image = tmp_path / "disk,file=x.qcow2"  # a comma in a path is no longer an option
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", image, "1M"], check=True)
    cfg = QemuConfig(
        firmware=fw,
        vars_copy=tmp_path / "vars.fd",
        accel_args=("-accel", "tcg", "-cpu", "max"),
        console_log=tmp_path / "serial.log",
        check_log=tmp_path / "check.log",
        image=image,
        tpm_args=("-device", "tpm-crb,tpmdev=tpm0"),
    )
    argv = build_command("qemu-system-x86_64", cfg)
    joined = " ".join(argv)
    lean = "smbus=off,i8042=off,vmport=off,sata=off"  # devices no boot test uses
    assert argv[argv.index("-machine") + 1] == f"q35,pflash0=pflash0,pflash1=pflash1,{lean},smm=on"
    assert "driver=cfi.pflash01,property=secure,value=on" in argv
    nodes = {
        n["node-name"]: n
        for n in (json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "-blockdev")
    }
    assert nodes["pflash0"]["file"]["filename"] == str(fw.code) and nodes["pflash0"]["read-only"]
    assert nodes["pflash1"]["file"]["filename"] == str(tmp_path / "vars.fd")
    assert nodes["pflash1"]["driver"] == "raw" and not nodes["pflash1"]["read-only"]
    # read-only boot: the image read-only, a throw-away overlay on top naming it by node
    base, top = nodes["disk0-base"], nodes["disk0"]
    assert base["file"]["filename"] == str(image) and base["read-only"] and base["backing"] is None
    assert top["backing"] == "disk0-base" and top["file"]["filename"] == str(
        tmp_path / "overlay.qcow2"
    )
    info = subprocess.run(["qemu-img", "info", "--output=json", tmp_path / "overlay.qcow2"],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert "backing-filename" not in info  # the overlay records no path
    assert "-drive" not in argv and "virtio-blk-pci,drive=disk0,bootindex=1" in argv
    assert "type=11,value=io.systemd.credential:dps-composer.check=1" in argv
    assert joined.count("-serial chardev:") == 2  # ttyS0 console, ttyS1 check channel
    assert {"-nodefaults", "-no-reboot"} <= set(argv) and argv[-1] == "tpm-crb,tpmdev=tpm0"

    plain = select_firmware(X86, "q35", secure_boot=False, dirs=[debian_like])
    argv = build_command("qemu", replace(cfg, firmware=plain, snapshot=False))
    assert argv[argv.index("-machine") + 1] == f"q35,pflash0=pflash0,pflash1=pflash1,{lean}"
    nodes = {
        n["node-name"]: n
        for n in (json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "-blockdev")
    }
    assert "disk0-base" not in nodes and not nodes["disk0"]["read-only"]


def test_varstore_in_another_format_is_refused(debian_like: Path, tmp_path: Path) -> None:
    fw = select_firmware(X86, "q35", secure_boot=False, dirs=[debian_like])
    vars_copy = tmp_path / "vars.fd"
    vars_copy.write_bytes(b"QFI\xfb" + b"\0" * 200)  # claims qcow2 (and is truncated)
    with pytest.raises(ComposerError):
        firmware_args(fw, vars_copy)


def test_descriptors_of_a_tree_name_files_inside_that_tree(tmp_path: Path) -> None:
    """A tree's descriptors say /usr/share/OVMF/...: the files are looked up in the tree."""
    root = tmp_path / "tree"
    (root / "usr/share/OVMF").mkdir(parents=True)
    for name in ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"):
        (root / "usr/share/OVMF" / name).write_bytes(b"\0" * 16)
    (tmp_path / "unused").mkdir()
    data = descriptor(tmp_path / "unused", code="c", template="v")
    data["mapping"]["executable"]["filename"] = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    data["mapping"]["nvram-template"]["filename"] = "/usr/share/OVMF/OVMF_VARS_4M.fd"
    fw_dir = root / "usr/share/qemu/firmware"
    write(fw_dir, "60-edk2-x86_64.json", data)
    fw = select_firmware(X86, "q35", secure_boot=False, dirs=[fw_dir], root=root)
    assert fw.code == root / "usr/share/OVMF/OVMF_CODE_4M.fd"
    assert fw.vars_template == root / "usr/share/OVMF/OVMF_VARS_4M.fd"
