"""DPS layouts end to end, with as few images as cover them (CI has 90 minutes):

- debian-dps-layout: ESP, XBOOTLDR, swap, /usr, /var, /var/tmp, /home (xfs), /srv (btrfs),
  /opt (linux-generic, the one fstab line) and root: one build, one boot;
- debian-erofs-usr: read-only erofs /usr, btrfs root: one build, one boot;
- osbuild-example: an unmodified osbuild blueprint (root only): one build, one boot of its
  qcow2 after `qemu-img resize +2G`, which must show / grown to fill the disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from composer.image.gpt import read_gpt
from composer.image.read import read_ext4_file
from composer.spec import dps

from .conftest import ROOT, ModuleTmp, composer, manifest, manifest_path

pytestmark = pytest.mark.integration

TIMES: dict[str, float] = {}


def _build(module_tmp: ModuleTmp, blueprint: str) -> Path:
    out = module_tmp.mktemp(blueprint)
    start = time.monotonic()
    composer("build", str(ROOT / "blueprints" / f"{blueprint}.toml"), "-o", str(out))
    TIMES[f"build {blueprint}"] = round(time.monotonic() - start, 1)
    return out


@pytest.fixture(scope="module")
def layout_image(module_tmp: ModuleTmp) -> Path:
    return _build(module_tmp, "debian-dps-layout")


@pytest.fixture(scope="module")
def erofs_image(module_tmp: ModuleTmp) -> Path:
    return _build(module_tmp, "debian-erofs-usr")


@pytest.fixture(scope="module")
def osbuild_image(module_tmp: ModuleTmp) -> Path:
    return _build(module_tmp, "osbuild-example")


def _boot(image: Path, tmp: Path, label: str, *args: str) -> dict[str, Any]:
    verdict_file = tmp / f"{label}.verdict.json"
    start = time.monotonic()
    # A generous deadline: under TCG on a busy 2-core machine a boot can take 10 minutes.
    proc = composer(
        "boot",
        str(image),
        "--timeout",
        "1200",
        "--json-file",
        str(verdict_file),
        *args,
        check=False,
    )
    TIMES[f"boot {label}"] = round(time.monotonic() - start, 1)
    print(f"times so far: {TIMES}")
    verdict: dict[str, Any] = json.loads(verdict_file.read_text())
    assert proc.returncode == 0, json.dumps(verdict["checks"], indent=1)
    assert verdict["passed"] is True
    return verdict


def _checks(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in verdict["checks"]}


def test_layout_gpt_types_flags_and_var_uuid(layout_image: Path) -> None:
    m = manifest(layout_image)
    _, entries = read_gpt(layout_image / "debian-dps-layout.raw")
    assert [(e.type_uuid, e.uuid, e.attrs) for e in entries] == [
        (p["type_uuid"], p["uuid"], p["attrs"]) for p in m["disk"]["partitions"]
    ]
    parts = {p["designator"]: p for p in m["disk"]["partitions"]}
    assert {"esp", "xbootldr", "swap", "usr", "var", "tmp", "home", "srv", "root"} <= set(parts)
    assert parts["root"] == m["disk"]["partitions"][-1] and parts["root"]["flags"] == ["grow-fs"]
    assert entries[-1].attrs == 1 << 59  # DPS grow-file-system
    assert parts["var"]["uuid"] == str(dps.var_partition_uuid("5f3c0de1a2b94c7e8d6f1a2b3c4d5e6f"))
    assert parts["usr"]["label"] == parts["root"]["label"] == "debian_1.0.0"
    opt = parts["linux-generic"]
    assert m["disk"]["fstab"] == [f"PARTUUID={opt['uuid']}\t/opt\text4\tdefaults\t0\t2"]


def test_layout_boots_with_every_partition_discovered(layout_image: Path, tmp_path: Path) -> None:
    verdict = _boot(layout_image / "debian-dps-layout.qcow2", tmp_path, "layout")
    checks = _checks(verdict)
    detail = checks["dps-mounts"]["detail"]
    assert checks["dps-mounts"]["passed"], detail
    for where in ("/usr ", "/var ", "/var/tmp ", "/home ", "/srv ", "/boot ", "/efi ", "swap "):
        assert f"{where}" in detail and "by discovery" in detail, (where, detail)
    assert "/opt /dev/vda9 ext4 linux-generic by fstab" in detail
    guest = verdict["guest"]
    fstab = [ln for ln in guest["fstab"] if ln.split()[1] != "/opt"]
    assert fstab == [], guest["fstab"]
    mounts = {mt["target"]: mt for mt in guest["mounts"]}
    assert mounts["/home"]["fstype"] == "xfs" and mounts["/srv"]["fstype"] == "btrfs"
    assert mounts["/boot"]["fstype"] == "vfat"
    assert checks["root-fills-disk"]["passed"], checks["root-fills-disk"]


def test_erofs_usr_boots_read_only(erofs_image: Path, tmp_path: Path) -> None:
    verdict = _boot(erofs_image / "debian-erofs-usr.qcow2", tmp_path, "erofs")
    checks = _checks(verdict)
    assert checks["dps-mounts"]["passed"], checks["dps-mounts"]
    mounts = {mt["target"]: mt for mt in verdict["guest"]["mounts"]}
    assert mounts["/usr"]["fstype"] == "erofs" and "ro" in mounts["/usr"]["options"].split(",")
    assert mounts["/"]["fstype"] == "btrfs"
    assert mounts["/usr"]["parttype"] == str(dps.by_designator("usr", "x86-64").uuid)


def test_osbuild_example_customizations_in_the_image(osbuild_image: Path) -> None:
    m = manifest(osbuild_image)
    assert m["package_pins"]["tmux"].startswith("3.")
    assert m["packages"]["tmux"] == m["package_pins"]["tmux"]
    raw = osbuild_image / "example-debian-server.raw"
    root = m["disk"]["partitions"][-1]["offset"]
    shadow = read_ext4_file(raw, root, "/etc/shadow").decode()
    admin = next(ln for ln in shadow.splitlines() if ln.startswith("admin:")).split(":")
    assert admin[1].startswith("$y$") and admin[2] == "0" and admin[7] == "24000"
    plain = "change me at first login"
    for text in (
        shadow,
        json.dumps(m),
        (osbuild_image / "example-debian-server.build.log").read_text(),
    ):
        assert plain not in text
    conf = read_ext4_file(raw, root, "/etc/example/conf.d/example.conf")
    assert conf == b"greeting = hello\n"
    assert b"NTP=0.pool.ntp.org" in read_ext4_file(
        raw, root, "/etc/systemd/timesyncd.conf.d/50-dps-composer.conf"
    )
    assert b"LANG=en_US.UTF-8\n" in read_ext4_file(raw, root, "/etc/locale.conf")
    assert b"Type=root" in read_ext4_file(raw, root, "/usr/lib/repart.d/50-dps-composer-root.conf")


def test_osbuild_example_grows_root_into_a_resized_disk(
    osbuild_image: Path, tmp_path: Path
) -> None:
    image = tmp_path / "example-debian-server.qcow2"
    shutil.copyfile(osbuild_image / "example-debian-server.qcow2", image)
    subprocess.run(["qemu-img", "resize", str(image), "+2G"], check=True, capture_output=True)
    m = manifest(osbuild_image)
    # resized after the build: judged against the build's manifest on purpose
    verdict = _boot(
        image, tmp_path, "osbuild-example grown", "--manifest", str(manifest_path(osbuild_image))
    )
    checks = _checks(verdict)
    assert checks["root-fills-disk"]["passed"], checks["root-fills-disk"]
    disk = verdict["guest"]["disk"]
    assert disk["size"] == m["disk"]["size"] + 2 * 1024**3
    root = m["disk"]["partitions"][-1]
    assert disk["root_partition"]["size"] >= root["size"] + 2 * 1024**3 - 2 * 1024**2
    assert disk["root_fs_size"] > root["size"]
    print(f"grown: {checks['root-fills-disk']['detail']}; times: {TIMES}")
