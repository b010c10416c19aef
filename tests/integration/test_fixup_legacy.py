"""A "legacy" image (root typed linux-generic, an fstab line for /, root= on the command line)
made from the default image, then made DPS-ready by `fixup --running` inside the booted
image and by `fixup IMAGE` offline. Three boots: legacy (runs the shell twin), after the
running fixup, after the offline fixup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from composer.core.hashing import sha256_file
from composer.judge.boot import boot_image
from composer.judge.verdict import Verdict, load_expectations
from composer.spec import dps

from .conftest import ROOT, composer, manifest_path

pytestmark = pytest.mark.integration

NAME = "debian-uki-sdboot"
GENERIC = str(dps.by_name("linux-generic").uuid)
ROOT_X86_64 = str(dps.by_name("root-x86-64").uuid)
FIXUP_CREDENTIAL = "type=11,value=io.systemd.credential:dps-composer.fixup=keep"


def make_legacy(default_image: Path, out: Path) -> dict[str, str]:
    """Copy the default image and make it depend on root= and fstab: root typed
    linux-generic, `UUID=… / ext4` in fstab, and a Type #1 loader entry (the default) that
    starts the same UKI with root=PARTUUID=… in its options."""
    import guestfs

    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{NAME}.raw"
    subprocess.run(
        ["cp", "--sparse=always", str(default_image / f"{NAME}.raw"), str(raw)], check=True
    )
    shutil.copyfile(manifest_path(default_image), out / f"{NAME}.manifest.json")
    os.environ.setdefault("LIBGUESTFS_BACKEND", "direct")
    os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        g.add_drive_opts(str(raw), format="raw", readonly=False)
        g.launch()
        g.part_set_gpt_type("/dev/sda", 2, GENERIC)
        partuuid = g.part_get_gpt_guid("/dev/sda", 2).lower()
        fs_uuid = g.vfs_uuid("/dev/sda2")
        g.mount("/dev/sda2", "/")
        g.mount("/dev/sda1", "/efi")
        fstab = g.cat("/etc/fstab") + f"UUID={fs_uuid} / ext4 defaults 0 1\n"
        g.write("/etc/fstab", fstab.encode())
        uki = Path(g.glob_expand("/efi/EFI/Linux/*.efi")[0]).name
        g.write(
            "/efi/loader/entries/legacy.conf",
            (
                "title Legacy (root= on the command line)\n"
                f"efi /EFI/Linux/{uki}\n"
                f"options root=PARTUUID={partuuid} console=tty0 console=ttyS0 audit=0\n"
            ).encode(),
        )
        g.write(
            "/efi/loader/loader.conf",
            g.cat("/efi/loader/loader.conf").encode() + b"default legacy.conf\n",
        )
        g.mkdir_p("/usr/libexec/dps-composer")
        g.upload(str(ROOT / "kickstart/post/dps-fixup.sh"), "/usr/libexec/dps-composer/fixup")
        g.chmod(0o755, "/usr/libexec/dps-composer/fixup")
        g.umount_all()
        g.shutdown()
    finally:
        g.close()
    return {"partuuid": partuuid, "fs_uuid": fs_uuid, "uki": uki}


def boot(image: Path, keep: Path, **kwargs: Any) -> Verdict:
    # changed after the build (that is the point): judged against the build's manifest
    verdict = boot_image(
        image,
        expectations=load_expectations(image, manifest=image.parent / f"{NAME}.manifest.json"),
        timeout=900,
        keep_dir=keep,
        console=print,
        **kwargs,
    )
    print(verdict.to_json())
    return verdict


def passed(verdict: Verdict, name: str) -> bool:
    check = verdict.check(name)
    assert check is not None, f"no {name} check in {verdict.to_json()}"
    return check.passed


def test_running_fixup_inside_the_booted_legacy_image(default_image: Path, tmp_path: Path) -> None:
    facts = make_legacy(default_image, tmp_path / "running")
    raw = tmp_path / "running" / f"{NAME}.raw"
    # Boot 1: the legacy image boots because of root= (its root is linux-generic); the check
    # runs the shell twin (dps-fixup --loader keep) after gathering its facts.
    first = boot(
        raw, tmp_path / "boot1", writable=True, extra_qemu_args=["-smbios", FIXUP_CREDENTIAL]
    )
    guest = first.guest or {}
    assert passed(first, "booted"), first.to_json()
    assert f"root=PARTUUID={facts['partuuid']}" in guest["cmdline"]
    assert guest["root"]["parttype"].lower() == GENERIC
    assert not passed(first, "root-discovered")
    assert [ln for ln in guest["fstab"] if ln.split()[1:2] == ["/"]]
    fixup = "\n".join(guest["fixup"])
    assert "exit status 0" in fixup, fixup
    assert f"linux-generic ({GENERIC}) -> root-x86-64 ({ROOT_X86_64})" in fixup, fixup
    assert "/etc/fstab: drop the lines for /" in fixup, fixup
    assert "legacy.conf: drop root=PARTUUID=" in fixup, fixup
    # Boot 2: the same disk, changed by the twin: / is found by its type.
    second = boot(raw, tmp_path / "boot2")
    assert second.passed, second.to_json()
    assert passed(second, "root-discovered") and passed(second, "no-root-on-cmdline")
    assert "root=" not in (second.guest or {})["cmdline"]


def test_offline_fixup_of_the_legacy_image(default_image: Path, tmp_path: Path) -> None:
    make_legacy(default_image, tmp_path / "legacy")
    legacy = tmp_path / "legacy" / f"{NAME}.raw"
    before = composer("inspect", str(legacy), check=False)
    assert before.returncode == 1, "the legacy image must not be DPS-compliant"
    fixed_dir = tmp_path / "fixed"
    fixed_dir.mkdir()
    fixed = fixed_dir / f"{NAME}.raw"
    shutil.copyfile(
        tmp_path / "legacy" / f"{NAME}.manifest.json", fixed_dir / f"{NAME}.manifest.json"
    )
    first = composer("fixup", str(legacy), "-o", str(fixed))
    assert "change: /dev/sda2: type linux-generic -> root-x86-64 (/)" in first.stdout
    assert "change: /etc/fstab: drop the lines for /" in first.stdout
    assert "change: /efi/loader/entries/legacy.conf: drop root=PARTUUID=" in first.stdout
    gpt = subprocess.run(["sfdisk", "-d", str(legacy)], capture_output=True, text=True).stdout
    assert GENERIC.upper() in gpt, "the original must stay as it was"
    # nothing left to do: decided read-only, the image's bytes (and mtime) stay as they were
    digest, mtime = sha256_file(fixed), fixed.stat().st_mtime_ns
    again = composer("fixup", str(fixed))
    assert "change:" not in again.stdout, again.stdout
    assert "read-only" in again.stderr and "read-write" not in again.stderr, again.stderr
    assert sha256_file(fixed) == digest and fixed.stat().st_mtime_ns == mtime
    report = composer("inspect", str(fixed), "--json=pretty")
    assert json.loads(report.stdout)["discovery"]["ok"] is True
    verdict = boot(fixed, tmp_path / "boot3")
    assert verdict.passed, verdict.to_json()
    assert passed(verdict, "root-discovered")
