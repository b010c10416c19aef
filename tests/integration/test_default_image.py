"""The default blueprint end to end: built, inspected offline, booted and judged (its passing
boot and the reports of `boot -j 2` are judged in test_measured_boot.py, on one boot of this
image beside an altered copy)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from composer.build.stages.sequence import KEYS_KNOWN, STAGES
from composer.core import version
from composer.image.gpt import read_gpt
from composer.image.read import list_vfat_dir, read_ext4_file, read_vfat_file
from composer.manifest.load import read_manifest
from composer.plan.load import load
from composer.plan.plan import Plan, make_plan
from composer.spec import dps
from composer.spec.pe import sections

from .conftest import (
    ROOT,
    build_json_path,
    cli_json_schema,
    composer,
    manifest,
    manifest_path,
    schema_validator,
)

pytestmark = pytest.mark.integration

ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
NAME = "debian-uki-sdboot"


def test_outputs_and_manifest(default_image: Path) -> None:
    m = manifest(default_image)
    for o in m["outputs"]:
        assert (default_image / o["file"]).stat().st_size == o["size"]
    assert {o["format"] for o in m["outputs"]} == {"raw", "qcow2"}
    assert m["uki"]["kernel_version"] in m["uki"]["path"]
    assert m["packages"]["systemd"]
    assert not list(default_image.glob(".*partial*")), "staging directory left behind"


def test_build_json(default_image: Path) -> None:
    """`build --json=short`: what was written and the manifest in brief, on stdout."""
    doc = json.loads(build_json_path(default_image).read_text())
    jsonschema.validate(doc, cli_json_schema("build"))
    assert Path(doc["manifest"]) == manifest_path(default_image)
    assert sorted(Path(p).name for p in doc["outputs"]) == sorted(
        o["file"] for o in manifest(default_image)["outputs"]
    )
    assert doc["image"]["composer"] == version.current().to_dict()
    assert manifest(default_image)["composer"] == version.current().to_dict()


def test_manifest_follows_the_schema_and_the_model(default_image: Path) -> None:
    """The built manifest is one the committed JSON schema and the typed model accept, and
    the model writes it back unchanged."""
    data = json.loads(manifest_path(default_image).read_text())
    schema_validator().validate(data)
    model = read_manifest(manifest_path(default_image))
    assert json.loads(model.to_json()) == data
    applying = [s for s in STAGES if s.applies(model_plan())]
    timed = list(data["timings"])
    if data["cache"]["image"] != "hit":
        assert timed == [s.name for s in applying]
        return
    # a hit: every stage before the keys are known ran, no later one but an early stage
    # (composer/build/pipeline.py), which ran beside them and was stopped if still running
    # when the image was found (then it has no timing)
    before = [s.name for s in applying if STAGES.index(s) < KEYS_KNOWN]
    may_run = [s.name for s in applying if STAGES.index(s) < KEYS_KNOWN or s.early]
    assert timed == [name for name in may_run if name in timed]  # listed order
    assert set(before) <= set(timed)


def model_plan() -> Plan:
    return make_plan(load(ROOT / "blueprints/debian-uki-sdboot.toml"))


def test_gpt_has_dps_types(default_image: Path) -> None:
    raw = default_image / f"{NAME}.raw"
    disk_guid, entries = read_gpt(raw)
    m = manifest(default_image)
    assert disk_guid == m["disk"]["guid"]
    assert [e.type_uuid for e in entries] == [ESP, ROOT_X86_64]
    assert [e.uuid for e in entries] == [p["uuid"] for p in m["disk"]["partitions"]]
    assert dps.by_uuid(entries[1].type_uuid).name == "root-x86-64"  # type: ignore[union-attr]


def test_uki_and_boot_loader_on_esp(default_image: Path) -> None:
    raw = default_image / f"{NAME}.raw"
    m = manifest(default_image)
    esp = m["disk"]["partitions"][0]["offset"]
    uki = read_vfat_file(raw, esp, m["uki"]["path"])
    s = sections(uki)
    for name in (".linux", ".initrd", ".cmdline", ".osrel", ".uname", ".sbat"):
        assert name in s, f"UKI lacks {name}"
    cmdline = s[".cmdline"].rstrip(b"\0").decode()
    assert "root=" not in cmdline
    assert cmdline.startswith("console=tty0 console=ttyS0")
    assert b"ID=debian" in s[".osrel"]
    assert "BOOTX64.EFI" in list_vfat_dir(raw, esp, "/EFI/BOOT")
    assert "systemd-bootx64.efi" in list_vfat_dir(raw, esp, "/EFI/systemd")
    assert b"timeout 0" in read_vfat_file(raw, esp, "/loader/loader.conf")


def test_no_fstab_entry_for_root(default_image: Path) -> None:
    raw = default_image / f"{NAME}.raw"
    root = manifest(default_image)["disk"]["partitions"][1]["offset"]
    fstab = read_ext4_file(raw, root, "/etc/fstab").decode()
    entries = [ln.split() for ln in fstab.splitlines() if ln.strip() and not ln.startswith("#")]
    assert not [e for e in entries if len(e) > 1 and e[1] == "/"]
    assert read_ext4_file(raw, root, "/etc/machine-id") == b""
    assert read_ext4_file(raw, root, "/etc/hostname") == b"dps-debian\n"
    # the triggers left ldconfig's cache, the users, hwdb and the catalog current: the first
    # boot's update services are skipped (composer/rootfs/updated.py), reproducibly
    nsec = manifest(default_image)["source_date_epoch"] * 10**9
    for stamp in ("/etc/.updated", "/var/.updated"):
        assert read_ext4_file(raw, root, stamp).decode().endswith(f"\nTIMESTAMP_NSEC={nsec}\n")


def test_boot_fails_when_root_is_linux_generic(default_image: Path, tmp_path: Path) -> None:
    image = tmp_path / f"{NAME}.raw"
    shutil.copyfile(default_image / f"{NAME}.raw", image)
    shutil.copyfile(manifest_path(default_image), tmp_path / f"{NAME}.manifest.json")
    generic = str(dps.by_name("linux-generic").uuid)
    subprocess.run(["sfdisk", "--part-type", str(image), "2", generic], check=True)
    verdict_file = tmp_path / "verdict.json"
    refused = composer("boot", str(image), check=False)  # no longer the image its manifest lists
    assert refused.returncode == 2 and "does not match the sha256" in refused.stderr
    proc = composer(
        "boot",
        str(image),
        "--manifest",
        str(tmp_path / f"{NAME}.manifest.json"),
        "--json-file",
        str(verdict_file),
        check=False,
    )
    assert proc.returncode != 0
    verdict = json.loads(verdict_file.read_text())
    assert verdict["passed"] is False
    failed = {c["name"] for c in verdict["checks"] if not c["passed"]}
    assert "root-discovered" in failed, verdict
    assert "root-discovered" in proc.stdout + proc.stderr


def test_manifest_predicts_pcr11_for_the_uki(default_image: Path) -> None:
    from composer.measure.pcr11 import predict_pcr11

    raw = default_image / f"{NAME}.raw"
    m = manifest(default_image)
    uki = read_vfat_file(raw, m["disk"]["partitions"][0]["offset"], m["uki"]["path"])
    predicted = predict_pcr11(sections(uki))["sha256"]
    assert m["pcr11"]["phases"]["sha256"] == predicted
    assert m["expect"]["pcrs"]["11"] == predicted[m["pcr11"]["booted_phase"]]


def test_no_ssh_host_keys_baked_in(default_image: Path) -> None:
    raw = default_image / f"{NAME}.raw"
    root = manifest(default_image)["disk"]["partitions"][1]["offset"]
    listing = subprocess.run(
        ["debugfs", "-R", "ls /etc/ssh", f"{raw}?offset={root}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sshd_config" in listing
    assert "ssh_host_" not in listing
