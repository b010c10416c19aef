"""Images the composer did not build: `inspect` classifies them offline, `boot` judges them
through a cloud-init cidata ISO (no manifest, no check unit in the image).

The image: systemd-repart's GPT and ext4 root from an mmdebstrap trixie tree with cloud-init,
systemd-boot and a UKI (tests/integration/foreign_image.py). systemd-dissect from the tools
tree is the oracle for which partition is what.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from composer.core import paths
from composer.core.chroot import output_in
from composer.image.gpt import read_gpt
from composer.judge.run import BootOptions, boot_one
from composer.spec import dps
from composer.spec.arch import get_arch
from composer.toolchain.toolstree import ensure_tools_tree

from .conftest import ModuleTmp, composer
from .foreign_image import build_repart_image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def foreign(module_tmp: ModuleTmp) -> Path:
    """The repart-built image as qcow2, alone in its directory (no manifest.json)."""
    work = module_tmp.mktemp("foreign-build")
    raw = build_repart_image(paths.cache_dir(), work, work / "foreign.raw")
    out = module_tmp.mktemp("foreign")
    qcow2 = out / "foreign.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    raw.unlink()
    return qcow2


def inspect(image: Path) -> tuple[int, dict[str, Any]]:
    proc = composer("inspect", str(image), "--json=pretty", check=False)
    return proc.returncode, json.loads(proc.stdout)


def systemd_view(image: Path, tmp: Path) -> dict[str, dict[str, str]]:
    """Partition UUID -> what systemd (systemd-repart 257, a dry run over the existing table,
    from the tools tree) calls the partition, plus blkid's file system probe of it."""
    tree = ensure_tools_tree(paths.cache_dir(), get_arch(platform.machine()))
    raw = tmp / "view.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    (tmp / "empty.d").mkdir()
    argv = ["systemd-repart", "--dry-run=yes", "--offline=yes", "--json=short"]
    argv += ["--definitions=/run/img/empty.d", "/run/img/view.raw"]
    view: dict[str, dict[str, str]] = {}
    for part in json.loads(output_in(tree, argv, binds=[(tmp, "/run/img")])):
        probe = subprocess.run(
            ["blkid", "-p", "-O", str(part["offset"]), "-o", "export", str(raw)],
            text=True,
            capture_output=True,
            check=True,
        ).stdout
        fields = dict(line.split("=", 1) for line in probe.splitlines() if "=" in line)
        view[part["uuid"]] = {
            "type": part["type"],
            "label": part["label"],
            "fstype": fields["TYPE"],
        }
    raw.unlink()
    return view


def test_inspect_classifies_every_partition(foreign: Path, tmp_path: Path) -> None:
    rc, report = inspect(foreign)
    assert rc == 0, report["discovery"]
    parts = report["partitions"]
    assert [(p["type_name"], p["filesystem"]["type"]) for p in parts] == [
        ("esp", "vfat"),
        ("root-x86-64", "ext4"),
    ]
    assert [p["label"] for p in parts] == ["esp", "root-x86-64"]  # repart's labels
    # systemd names every partition the same; blkid finds the same file systems
    theirs = systemd_view(foreign, tmp_path)
    assert set(theirs) == {p["uuid"] for p in parts}
    for p in parts:
        seen = theirs[p["uuid"]]
        assert (seen["type"], seen["label"]) == (p["type_name"], p["label"])
        assert seen["fstype"] == p["filesystem"]["type"]
    assert report["discovery"] == {"ok": True, "root": 2, "problems": [], "warnings": []}
    assert report["os_release"]["ID"] == "debian" and report["cloud_init"] is True
    (uki,) = [b for b in report["efi"] if b["kind"] == "uki"]
    assert uki["cmdline"] == "console=tty0 console=ttyS0" and uki["signed_by"] == []
    assert {".linux", ".initrd", ".cmdline", ".osrel", ".uname"} <= set(uki["sections"])
    assert uki["pcr11"] and len(uki["pcr11"]) == 64
    assert {b["kind"] for b in report["efi"]} == {"uki", "systemd-boot"}


def test_inspect_explains_a_linux_generic_root(foreign: Path, tmp_path: Path) -> None:
    raw = tmp_path / "generic.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(foreign), str(raw)], check=True)
    generic = str(dps.by_name("linux-generic").uuid)
    subprocess.run(["sfdisk", "--quiet", "--part-type", str(raw), "2", generic], check=True)
    rc, report = inspect(raw)
    assert rc == 1
    assert report["partitions"][1]["type_name"] == "linux-generic"
    (problem,) = report["discovery"]["problems"]
    assert "no root-x86-64 partition" in problem and "linux-generic" in problem
    text = composer("inspect", str(raw), check=False).stdout
    assert "root auto-discovery: NO" in text and "never auto-mounted" in text


def test_boot_foreign_image_through_cidata(foreign: Path, tmp_path: Path) -> None:
    assert not list(foreign.parent.glob("*.manifest.json"))
    verdict_file = tmp_path / "verdict.json"
    proc = composer(
        "boot",
        str(foreign),
        "--json-file",
        str(verdict_file),
        "--keep",
        str(tmp_path / "keep"),
        "--timeout",
        "1200",  # cloud-init's stages under TCG; an upper bound, not a wait
        check=False,
    )
    verdict = json.loads(verdict_file.read_text())
    assert proc.returncode == 0, verdict["checks"]
    assert verdict["mode"] == "cidata" and verdict["passed"] is True
    names = {c["name"]: c for c in verdict["checks"]}
    assert names["root-discovered"]["passed"] and names["no-failed-units"]["passed"]
    assert verdict["guest"]["root"]["parttype"] == str(dps.by_name("root-x86-64").uuid)
    assert any("cidata" in n for n in verdict["notes"])
    # measured boot of an image we did not build: its UKI's PCR 11, predicted by inspect
    _, report = inspect(foreign)
    (uki,) = [b for b in report["efi"] if b["kind"] == "uki"]
    assert verdict["guest"]["tpm"]["pcrs"]["11"].lower() == uki["pcr11"]
    assert f"PCR 11 equals its (not enforced) prediction {uki['pcr11']}" in verdict["notes"]
    shutil.rmtree(tmp_path / "keep", ignore_errors=True)


def test_inspect_reads_an_xfs_root_with_libguestfs(tmp_path: Path) -> None:
    """A root file system the offline readers cannot read (xfs) is read with libguestfs."""
    from composer.build.fs.fs import copy_into, make_vfat
    from composer.image.gpt import GptEntry, write_gpt

    (tmp_path / "os-release").write_text('ID=testos\nPRETTY_NAME="Test OS on XFS"\n')
    (tmp_path / "fstab").write_text("LABEL=root / xfs defaults 0 1\n")
    proto = tmp_path / "proto"
    proto.write_text(
        "/dev/null\n0 0\nd--755 0 0\n"
        f"usr d--755 0 0\nlib d--755 0 0\nos-release ---644 0 0 {tmp_path}/os-release\n$\n$\n"
        f"etc d--755 0 0\nfstab ---644 0 0 {tmp_path}/fstab\n$\n$\n"
    )
    mib = 1024 * 1024
    root = tmp_path / "root.img"
    root.write_bytes(b"")
    subprocess.run(["truncate", "-s", f"{400 * mib}", str(root)], check=True)
    subprocess.run(["mkfs.xfs", "-q", "-L", "root", "-p", str(proto), str(root)], check=True)
    (tmp_path / "esp").mkdir()
    esp = tmp_path / "esp.img"
    make_vfat(esp, 64 * mib, tmp_path / "esp", "12345678", "ESP")
    disk = tmp_path / "xfs.raw"
    subprocess.run(["truncate", "-s", f"{470 * mib}", str(disk)], check=True)
    write_gpt(
        disk,
        "9e3bfa0d-9a57-4b5c-8f66-0e0b8d2b6a11",
        [
            GptEntry(1, mib, 64 * mib, str(dps.by_name("esp").uuid), str(uuid4()), "esp"),
            GptEntry(
                2, 65 * mib, 400 * mib, str(dps.by_name("root-x86-64").uuid), str(uuid4()), "root"
            ),
        ],
    )
    copy_into(esp, disk, mib)
    copy_into(root, disk, 65 * mib)
    rc, report = inspect(disk)
    assert report["root_read"] == "libguestfs (xfs)"
    assert report["partitions"][1]["filesystem"]["type"] == "xfs"
    assert report["os_release"]["PRETTY_NAME"] == "Test OS on XFS"
    assert rc == 1 and any("/etc/fstab mounts /" in p for p in report["discovery"]["problems"])


@pytest.fixture(scope="module")
def unprovisioned(default_image: Path, module_tmp: ModuleTmp) -> Path:
    """The default image without its manifest, made to look unprovisioned: /etc/machine-id says
    "uninitialized" (a first boot, machine-id(5); the image's empty one is not) and there is no
    /etc/shadow, so systemd-firstboot asks for the root password on the console (it asks for
    every setting the image lacks; an image made by another tool, such as mkosi's default
    one, lacks more). Its own boot check is disabled, as no other tool's image has it: else its
    record may come before the console is judged (under load it did), and the verdict is then
    rightly the check's, not the console's."""
    out = module_tmp.mktemp("unprovisioned")
    raw = out / "unprovisioned.raw"
    subprocess.run(
        ["cp", "--sparse=always", str(default_image / "debian-uki-sdboot.raw"), str(raw)],
        check=True,
    )
    (out / "machine-id").write_text("uninitialized\n")
    (out / "debugfs.cmds").write_text(
        "rm /etc/shadow\nrm /etc/machine-id\n"
        "rm /etc/systemd/system/multi-user.target.wants/dps-composer-check.service\n"
        f"write {out / 'machine-id'} /etc/machine-id\nsif /etc/machine-id mode 0100444\n"
    )
    root = read_gpt(raw)[1][-1]
    subprocess.run(
        ["debugfs", "-w", "-f", str(out / "debugfs.cmds"), f"{raw}?offset={root.start}"],
        check=True,
    )
    return raw


def test_boot_without_cloud_init_is_judged_from_the_serial_console(
    unprovisioned: Path, tmp_path: Path
) -> None:
    """No cloud-init in the image, so no cidata; the verdict comes from the console (login
    prompt, root mounted) and says so. The image's first boot asks for the root password
    unless it is told: `boot` passes systemd-firstboot's credentials, so it boots on."""
    verdict_file = tmp_path / "verdict.json"
    keep = tmp_path / "keep"
    proc = composer(
        "boot",
        str(unprovisioned),
        "--json-file",
        str(verdict_file),
        "--keep",
        str(keep),
        "--timeout",
        "1200",
        check=False,
    )
    verdict = json.loads(verdict_file.read_text())
    assert proc.returncode == 0, verdict["checks"]
    assert verdict["mode"] == "serial"
    assert [c["name"] for c in verdict["checks"]] == ["booted", "root-mounted"]
    assert all("serial console only" in c["detail"] for c in verdict["checks"])
    assert "login" in verdict["timings"]
    assert any("no cloud-init" in n for n in verdict["notes"])
    console = (keep / "serial.log").read_text(errors="replace")
    assert "First Boot Wizard" in console  # systemd-firstboot ran, and asked nothing
    assert "Please configure your system!" not in console


def test_a_console_prompt_fails_the_boot_at_once(unprovisioned: Path, tmp_path: Path) -> None:
    """Without the credentials the same first boot stops at systemd-firstboot's question: a
    FAIL naming the prompt as soon as it shows, not a wait for the timeout."""
    opts = BootOptions(timeout_for=lambda _: 1200.0, firstboot=False, retries=0)
    result = boot_one(unprovisioned, "unprovisioned", opts, tmp_path / "keep", print)
    verdict = result.verdict
    print(verdict.to_json())
    assert result.mode == "serial" and verdict.outcome == "fail"
    prompt = verdict.check("no-console-prompt")
    assert prompt is not None and not prompt.passed
    assert "Please configure your system!" in prompt.detail
    booted = verdict.check("booted")
    assert booted is not None and "within 1200 s" not in booted.detail
