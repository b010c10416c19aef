"""A "legacy" image (root typed linux-generic, an fstab line for /, root= on the command line)
made from the default image (once; each test works on a copy), then made DPS-ready by
`fixup --running` inside the booted image and by `fixup IMAGE -o COPY` offline. Three boots:
legacy (runs the shell twin), then the disk the running fixup changed and the offline fixup's
copy, side by side (one vCPU each, as `boot -j 2` boots them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from composer.core.hashing import sha256_file
from composer.image.gpt import read_gpt
from composer.judge.boot import boot_image
from composer.judge.verdict import Verdict, load_expectations
from composer.spec import dps

from .conftest import ROOT, ModuleTmp, composer, manifest_path

pytestmark = pytest.mark.integration

NAME = "debian-uki-sdboot"
GENERIC = str(dps.by_name("linux-generic").uuid)
ROOT_X86_64 = str(dps.by_name("root-x86-64").uuid)
FIXUP_CREDENTIAL = "type=11,value=io.systemd.credential:dps-composer.fixup=keep"


def make_legacy(default_image: Path, out: Path) -> dict[str, str]:
    """Copy the default image and make it depend on root= and fstab: root typed
    linux-generic, `UUID=… / ext4` in fstab, and a Type #1 loader entry (the default) that
    starts the same UKI with root=PARTUUID=… in its options. Written as an installer leaves it,
    with sfdisk, debugfs and mtools on the image file (no appliance to launch)."""
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{NAME}.raw"
    subprocess.run(
        ["cp", "--sparse=always", str(default_image / f"{NAME}.raw"), str(raw)], check=True
    )
    shutil.copyfile(manifest_path(default_image), out / f"{NAME}.manifest.json")
    subprocess.run(["sfdisk", "-q", "--part-type", str(raw), "2", GENERIC], check=True)
    esp, root = read_gpt(raw)[1][:2]
    partuuid = root.uuid
    ext4 = f"{raw}?offset={root.start}"
    stats = subprocess.run(
        ["debugfs", "-R", "stats", ext4], check=True, capture_output=True, text=True
    ).stdout
    fs_uuid = next(ln.split()[-1] for ln in stats.splitlines() if ln.startswith("Filesystem UUID"))
    fstab = subprocess.run(
        ["debugfs", "-R", "cat /etc/fstab", ext4], check=True, capture_output=True, text=True
    ).stdout
    (out / "fstab").write_text(fstab + f"UUID={fs_uuid} / ext4 defaults 0 1\n")
    (out / "debugfs.cmds").write_text(
        "rm /etc/fstab\n"
        f"write {out / 'fstab'} /etc/fstab\nsif /etc/fstab mode 0100644\n"
        "mkdir /usr/libexec/dps-composer\n"
        f"write {ROOT / 'kickstart/post/dps-fixup.sh'} /usr/libexec/dps-composer/fixup\n"
        "sif /usr/libexec/dps-composer/fixup mode 0100755\n"
    )
    subprocess.run(["debugfs", "-w", "-f", str(out / "debugfs.cmds"), ext4], check=True)
    vfat = f"{raw}@@{esp.start}"
    listing = subprocess.run(
        ["mdir", "-b", "-i", vfat, "::/EFI/Linux"], check=True, capture_output=True, text=True
    ).stdout
    uki = next(Path(ln).name for ln in listing.split() if ln.lower().endswith(".efi"))
    (out / "legacy.conf").write_text(
        "title Legacy (root= on the command line)\n"
        f"efi /EFI/Linux/{uki}\n"
        f"options root=PARTUUID={partuuid} console=tty0 console=ttyS0 audit=0\n"
    )
    loader_conf = subprocess.run(
        ["mtype", "-i", vfat, "::/loader/loader.conf"], check=True, capture_output=True
    ).stdout
    (out / "loader.conf").write_bytes(loader_conf + b"default legacy.conf\n")
    for name, dest in (("legacy.conf", "::/loader/entries/"), ("loader.conf", "::/loader/")):
        subprocess.run(["mcopy", "-o", "-i", vfat, str(out / name), dest], check=True)
    for name in ("fstab", "debugfs.cmds", "legacy.conf", "loader.conf"):
        (out / name).unlink()
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


def copy_of(legacy: Path, dest: Path) -> Path:
    """A copy of the legacy image (sparse) and its manifest in ``dest``."""
    dest.mkdir(parents=True)
    subprocess.run(["cp", "--sparse=always", str(legacy / f"{NAME}.raw"), str(dest)], check=True)
    shutil.copyfile(legacy / f"{NAME}.manifest.json", dest / f"{NAME}.manifest.json")
    return dest / f"{NAME}.raw"


@pytest.fixture(scope="module")
def legacy(default_image: Path, module_tmp: ModuleTmp) -> tuple[Path, dict[str, str]]:
    """The legacy image's directory and its facts, made once for both tests."""
    out = module_tmp.mktemp("legacy")
    return out, make_legacy(default_image, out)


@pytest.fixture(scope="module")
def running(legacy: tuple[Path, dict[str, str]], module_tmp: ModuleTmp) -> dict[str, Any]:
    """Boot 1: a copy of the legacy image boots because of root= (its root is linux-generic);
    the check runs the shell twin (dps-fixup --loader keep) after gathering its facts, and
    the twin changes the disk."""
    work = module_tmp.mktemp("running")
    raw = copy_of(legacy[0], work / "disk")
    first = boot(raw, work / "boot1", writable=True, extra_qemu_args=["-smbios", FIXUP_CREDENTIAL])
    return {"raw": raw, "first": first, "facts": legacy[1]}


@pytest.fixture(scope="module")
def offline(
    legacy: tuple[Path, dict[str, str]], running: dict[str, Any], module_tmp: ModuleTmp
) -> dict[str, Any]:
    """`fixup` of a copy of the legacy image, offline, as a user runs it: what each command
    said and what it left, for the test to judge. After the legacy image's boot (``running``),
    which made the boot tools tree: libguestfs runs on its QEMU."""
    work = module_tmp.mktemp("offline")
    legacy_raw = copy_of(legacy[0], work / "legacy")
    done: dict[str, Any] = {"before": composer("inspect", str(legacy_raw), check=False)}
    fixed_dir = work / "fixed"
    fixed_dir.mkdir()
    fixed = fixed_dir / f"{NAME}.raw"
    shutil.copyfile(
        legacy_raw.parent / f"{NAME}.manifest.json", fixed_dir / f"{NAME}.manifest.json"
    )
    done["first"] = composer("fixup", str(legacy_raw), "-o", str(fixed))
    done["gpt"] = subprocess.run(
        ["sfdisk", "-d", str(legacy_raw)], capture_output=True, text=True
    ).stdout
    # nothing left to do: decided read-only, the image's bytes (and mtime) stay as they were
    done["stamp"] = sha256_file(fixed), fixed.stat().st_mtime_ns
    done["again"] = composer("fixup", str(fixed))
    done["stamp after"] = sha256_file(fixed), fixed.stat().st_mtime_ns
    done["report"] = composer("inspect", str(fixed), "--json=pretty")
    # a copy with nothing to do (-o): decided with its file systems mounted read-only
    copy = work / "copy" / f"{NAME}.raw"
    copy.parent.mkdir()
    done["copy"] = composer("fixup", str(fixed), "-o", str(copy))
    done["copy sha256"] = sha256_file(copy)
    done["fixed"] = fixed
    return done


@pytest.fixture(scope="module")
def fixed_boots(
    running: dict[str, Any], offline: dict[str, Any], module_tmp: ModuleTmp
) -> dict[str, Any]:
    """Boots 2 and 3, side by side, as a user runs them (`boot -j 2`): the disk the twin
    changed, the offline fixup's copy. Both changed after the build (that is the point): judged
    against the build's manifest."""
    work = module_tmp.mktemp("fixed-boots")
    proc = composer(
        "boot",
        "-j",
        "2",
        str(running["raw"]),
        str(offline["fixed"]),
        "--manifest",
        str(offline["fixed"].parent / f"{NAME}.manifest.json"),
        "--timeout",
        "900",
        "--keep",
        str(work / "keep"),
        "--json-file",
        str(work / "verdicts.json"),
        check=False,
    )
    doc = json.loads((work / "verdicts.json").read_text())
    running_verdict, offline_verdict = doc["images"]
    return {"proc": proc, "doc": doc, "running": running_verdict, "offline": offline_verdict}


def check_passed(verdict: dict[str, Any], name: str) -> bool:
    """``passed`` for a verdict as `boot --json-file` reports it."""
    found = {c["name"]: c["passed"] for c in verdict["checks"]}
    assert name in found, f"no {name} check in {verdict}"
    return bool(found[name])


def test_both_fixed_images_pass_side_by_side(fixed_boots: dict[str, Any]) -> None:
    """Every image of the run passed: exit code 0, in the report too, and the same checks ran
    on both (one manifest)."""
    doc = fixed_boots["doc"]
    assert fixed_boots["proc"].returncode == 0 and doc["exit_code"] == 0, doc
    assert doc["passed"] is True
    first, second = doc["images"]
    assert [c["name"] for c in first["checks"]] == [c["name"] for c in second["checks"]]
    for verdict in (first, second):
        assert verdict["passed"] is True and verdict["outcome"] == "pass", verdict


def test_running_fixup_inside_the_booted_legacy_image(
    running: dict[str, Any], fixed_boots: dict[str, Any]
) -> None:
    facts, first = running["facts"], running["first"]
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
    second = fixed_boots["running"]
    assert second["passed"], second
    assert check_passed(second, "root-discovered") and check_passed(second, "no-root-on-cmdline")
    assert "root=" not in second["guest"]["cmdline"]


def test_offline_fixup_of_the_legacy_image(
    offline: dict[str, Any], fixed_boots: dict[str, Any]
) -> None:
    assert offline["before"].returncode == 1, "the legacy image must not be DPS-compliant"
    first = offline["first"]
    assert "change: /dev/sda2: type linux-generic -> root-x86-64 (/)" in first.stdout
    assert "change: /etc/fstab: drop the lines for /" in first.stdout
    assert "change: /efi/loader/entries/legacy.conf: drop root=PARTUUID=" in first.stdout
    assert GENERIC.upper() in offline["gpt"], "the original must stay as it was"
    # the run's own copy is opened once, read-write (no read-only launch to decide first)
    assert "read-only" not in first.stderr and first.stderr.count("libguestfs") == 1, first.stderr
    # on QEMU 10: the legacy image's boot made the boot tools tree before
    assert "(the boot tools tree's QEMU;" in first.stderr, first.stderr
    # nothing left to do: decided read-only, the image's bytes (and mtime) stay as they were
    again = offline["again"]
    assert "change:" not in again.stdout, again.stdout
    assert "read-only" in again.stderr and "read-write" not in again.stderr, again.stderr
    assert offline["stamp after"] == offline["stamp"]
    copy = offline["copy"]  # nothing to do in a copy: byte for byte the image it copied
    assert "change:" not in copy.stdout and copy.stderr.count("libguestfs") == 1, copy.stderr
    assert offline["copy sha256"] == offline["stamp"][0]
    assert json.loads(offline["report"].stdout)["discovery"]["ok"] is True
    verdict = fixed_boots["offline"]
    assert verdict["passed"], verdict
    assert check_passed(verdict, "root-discovered")
