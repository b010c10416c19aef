"""A sealed image proved across boots on one TPM (`boot --writable --tpm-state`):

1. the UKI's `.pcrsig` is what systemd-measure 257 itself signs for the same sections and key;
2. first boot: systemd-repart creates /srv, LUKS2 with a TPM2 token bound to the UKI's signed
   PCR policy (PASS, "created and enrolled");
3. next boot, the ESP replaced by the one of an image signed with another PCR key: the TPM
   refuses, and the verdict FAILs naming /srv and systemd-cryptsetup's reason (never a prompt,
   a timeout or an infrastructure error);
4. with Secure Boot and a recovery key: the key is shown once at first boot, opens the volume
   and is in no log and nowhere on the disk; at the second boot systemd-gpt-auto-generator finds
   the volume by its type and the TPM unlocks it (PASS; the policy binds PCR 11 only, so this
   is the unlock of every sealed image, with or without Secure Boot); a changed command line
   (the UKI re-signed for Secure Boot, its .pcrsig kept) is refused by the TPM and the volume
   asks for the key.

One image and its twin (same blueprint, another key: only the UKI differs), each built once,
and the Secure Boot image with a recovery key.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from composer.build.bootchain.chain import default_keys_dir
from composer.core import paths
from composer.core.chroot import output_in
from composer.image.read import MTOOLS_ENV, list_vfat_dir, read_vfat_file
from composer.judge.recovery import ANNOUNCE, KEY_SHAPE, REDACTED
from composer.measure.pcr11 import PHASES, predict_pcr11, uki_sections
from composer.measure.pcrsig import fingerprint_of, parse_pcrsig, signed_policy
from composer.spec.arch import get_arch
from composer.toolchain.pcrkey import PRIVATE_FILE, PUBLIC_FILE
from composer.toolchain.secureboot import load_keys, sign_pe
from composer.toolchain.toolstree import ensure_tools_tree

from .conftest import ModuleTmp, composer, found_in, private_key_pieces

pytestmark = pytest.mark.integration

BLUEPRINT = """
name = "sealed"
distro = "debian-13"

[customizations]
hostname = "sealed"

[measured]
sign_policy = true
sealed = ["srv"]
{recovery}{secureboot}
[image]
size = "2 GiB"
formats = ["raw"]

[validate]
timeout = "15 min"
"""
INSIDE = "/run/dps-sealed-test"
KEY_BYTES = re.compile(KEY_SHAPE.pattern.encode())
MEASURE = "/usr/lib/systemd/systemd-measure"


@dataclass(frozen=True)
class Built:
    image: Path
    manifest: dict[str, Any]
    manifest_path: Path
    keys: Path


def build(
    where: Path, keys: Path | None = None, secure_boot: bool = False, recovery: bool = False
) -> Built:
    """The image, signed with a new PCR key pair (or ``keys``), Secure Boot signed if asked
    (with the cache's default Secure Boot keys), with a recovery key per volume if asked."""
    if keys is None:
        keys = where / "keys"
        composer("keys", "generate", "--pcr-only", str(keys))
    bp = where / "sealed.toml"
    sb = "\n[secureboot]\nsign = true\n" if secure_boot else ""
    rk = 'recovery = "console"\n' if recovery else ""
    bp.write_text(BLUEPRINT.format(secureboot=sb, recovery=rk))
    composer("build", str(bp), "-o", str(where / "out"), "--pcr-keys", str(keys))
    manifest_path = where / "out" / "sealed.manifest.json"
    return Built(
        where / "out" / "sealed.raw",
        json.loads(manifest_path.read_text()),
        manifest_path,
        keys,
    )


@pytest.fixture(scope="module")
def images(module_tmp: ModuleTmp) -> tuple[Built, Built]:
    """The image and its twin whose UKI is signed with another PCR key."""
    return build(module_tmp.mktemp("sealed-a")), build(module_tmp.mktemp("sealed-b"))


def esp(built: Built) -> dict[str, Any]:
    return next(p for p in built.manifest["disk"]["partitions"] if p["designator"] == "esp")


def uki_of(built: Built) -> bytes:
    offset = esp(built)["offset"]
    (name,) = [n for n in list_vfat_dir(built.image, offset, "/EFI/Linux") if n.endswith(".efi")]
    return read_vfat_file(built.image, offset, f"/EFI/Linux/{name}")


def test_the_pcr_signature_is_systemd_measures(images: tuple[Built, Built], tmp_path: Path) -> None:
    built = images[0]
    policy = built.manifest["pcr_policy"]
    key_fp = fingerprint_of((built.keys / PUBLIC_FILE).read_bytes())
    assert policy["public_key_sha256"] == key_fp == built.manifest["expect"]["pcr_policy"]
    assert policy["signed_phases"] == list(PHASES[1:])
    assert [v["designator"] for v in policy["sealed"]] == ["srv"]
    (tmp_path / "uki.efi").write_bytes(uki_of(built))
    sections = uki_sections(tmp_path / "uki.efi")
    assert sections[".pcrpkey"].rstrip(b"\0") == (built.keys / PUBLIC_FILE).read_bytes()
    files = []
    for name, data in sections.items():
        if name in (".linux", ".osrel", ".cmdline", ".initrd", ".uname", ".sbat", ".pcrpkey"):
            (tmp_path / name[1:]).write_bytes(data)
            files.append(f"--{name[1:]}={INSIDE}/{name[1:]}")
    shutil.copy(built.keys / PUBLIC_FILE, tmp_path / PUBLIC_FILE)
    shutil.copy(built.keys / PRIVATE_FILE, tmp_path / PRIVATE_FILE)
    tree = ensure_tools_tree(paths.cache_dir(), get_arch(platform.machine()))
    phases = [f"--phase={p}" for p in PHASES[1:]]
    signed = output_in(
        tree,
        [MEASURE, "sign", *files, "--bank=sha256", *phases,
         f"--private-key={INSIDE}/{PRIVATE_FILE}", f"--public-key={INSIDE}/{PUBLIC_FILE}"],
        binds=[(tmp_path, INSIDE)],
    )  # fmt: skip
    assert json.loads(signed) == json.loads(sections[".pcrsig"].rstrip(b"\0"))
    calculated = json.loads(
        output_in(
            tree,
            [MEASURE, "calculate", "--json=short", *files, "--bank=sha256", *phases],
            binds=[(tmp_path, INSIDE)],
        )
    )
    ours = predict_pcr11(sections, phases=PHASES[1:])["sha256"]
    assert {e["phase"]: e["hash"] for e in calculated["sha256"]} == ours
    assert {s.fingerprint for s in parse_pcrsig(sections[".pcrsig"])} == {key_fp}


def test_the_pcr_private_key_is_in_neither_image_nor_log(images: tuple[Built, Built]) -> None:
    """The build signs with the private key (bound into the tools tree for ukify alone): only
    the public key reaches the image."""
    built = images[0]
    needles = private_key_pieces(built.keys / PRIVATE_FILE)
    assert found_in(built.keys / PRIVATE_FILE, needles), "the scan finds nothing even in the key"
    public = [ln for ln in (built.keys / PUBLIC_FILE).read_bytes().splitlines() if ln][2]
    assert found_in(built.image, [public]), "control: .pcrpkey holds the public key"
    out = built.image.parent
    for f in (built.image, out / "sealed.build.log", built.manifest_path):
        assert found_in(f, needles) == [], f"PCR private key material in {f}"


def splice_esp(source: Built, target: Path, where: dict[str, Any]) -> None:
    """Copy ``source``'s ESP over the ESP of the disk ``target`` (same layout)."""
    src_esp = esp(source)
    assert (src_esp["offset"], src_esp["size"]) == (where["offset"], where["size"])
    with source.image.open("rb") as src, target.open("r+b") as dst:
        src.seek(src_esp["offset"])
        dst.seek(where["offset"])
        left = where["size"]
        while left:
            chunk = src.read(min(left, 1 << 20))
            dst.write(chunk)
            left -= len(chunk)


def boot(image: Path, built: Built, state: Path, keep: Path) -> tuple[int, dict[str, Any]]:
    result = keep.parent / f"{keep.name}.json"
    done = composer(
        "boot", str(image), "--writable", "--tpm-state", str(state),
        "--manifest", str(built.manifest_path), "--keep", str(keep),
        "--json-file", str(result),
        check=False,
    )  # fmt: skip
    entry = json.loads(result.read_text())  # one image: its verdict document
    return done.returncode, {c["name"]: c for c in entry["checks"]}


def test_enroll_unlock_then_another_key_fails(
    images: tuple[Built, Built], module_tmp: ModuleTmp
) -> None:
    built, twin = images
    where = module_tmp.mktemp("sealed-sequence")
    disk, state = where / "sequence.raw", where / "tpm-state"
    shutil.copyfile(built.image, disk)

    code, checks = boot(disk, built, state, where / "boot-1")
    assert code == 0, checks
    assert "created and enrolled this boot" in checks["sealed-srv"]["detail"]
    assert "over PCR [11]" in checks["sealed-srv"]["detail"]
    # the unlock by the TPM at the next boot: test_with_secure_boot_and_a_recovery_key's second
    # boot (the same PCR key and policy, PCR 11 only)

    splice_esp(twin, disk, esp(built))
    code, checks = boot(disk, built, state, where / "boot-2")
    assert code == 1, checks  # a FAIL of the image, not a host error (4) nor a hang
    failed = {name: c["detail"] for name, c in checks.items() if not c["passed"]}
    assert "/srv: not unlocked" in failed["sealed-srv"], failed
    # systemd-cryptsetup's words: no signature in the UKI matches the enrolled policy key
    assert "No TPM2 metadata matching the current system state" in failed["sealed-srv"]
    assert "passphrase-prompt" not in json.dumps(failed)


def test_with_secure_boot_and_a_recovery_key(
    images: tuple[Built, Built], module_tmp: ModuleTmp
) -> None:
    """The same PCR key, the boot chain signed for Secure Boot (PCR 7 changes, the policy binds
    PCR 11 only), and ``recovery = "console"``: the first boot enrolls the volume and a
    recovery key, shown once on the console, kept out of every log and the disk, and proved to
    open the volume; the second unlocks by the TPM and shows no key; a UKI whose command line
    was changed (re-signed for Secure Boot, its .pcrsig kept) is refused by the TPM, and
    systemd-cryptsetup asks for the recovery key: a FAIL at once, not a hang."""
    where = module_tmp.mktemp("sealed-secureboot")
    built = build(where, keys=images[0].keys, secure_boot=True, recovery=True)
    assert built.manifest["expect"]["secure_boot"] is True
    assert built.manifest["pcr_policy"]["recovery"] == "console"
    same = {k: v for k, v in built.manifest["pcr_policy"].items() if k != "recovery"}
    assert same == {k: v for k, v in images[0].manifest["pcr_policy"].items() if k != "recovery"}
    disk, state = where / "sequence.raw", where / "tpm-state"
    shutil.copyfile(built.image, disk)

    code, checks = boot(disk, built, state, where / "boot-1")
    assert code == 0, checks
    assert checks["secure-boot"]["passed"]
    assert "created and enrolled this boot" in checks["sealed-srv"]["detail"]
    shown = checks["recovery-srv"]["detail"]
    assert "shown once on the console" in shown and "opens keyslot" in shown, shown
    serial = (where / "boot-1" / "serial.log").read_text(errors="replace")
    assert f"{ANNOUNCE} /srv: recovery key: {REDACTED}" in serial
    for kept in [*(where / "boot-1").rglob("*"), where / "boot-1.json", disk]:
        if kept.is_file():
            assert not key_shaped_in(kept), f"a recovery key in {kept}"

    code, checks = boot(disk, built, state, where / "boot-2")
    assert code == 0, checks
    assert "unlocked by the TPM and mounted" in checks["sealed-srv"]["detail"]
    assert "not shown again" in checks["recovery-srv"]["detail"]
    assert REDACTED not in (where / "boot-2" / "serial.log").read_text(errors="replace")

    change_cmdline(built, disk, where / "uki.efi")
    code, checks = boot(disk, built, state, where / "boot-3")
    assert code == 1, checks  # a FAIL of the image, not a host error (4) nor a hang
    failed = {name: c["detail"] for name, c in checks.items() if not c["passed"]}
    assert "/srv: not unlocked" in failed["sealed-srv"], failed
    assert "asks for the volume's recovery key" in failed["sealed-srv"], failed
    assert "No TPM2 metadata matching the current system state" in failed["sealed-srv"]


def key_shaped_in(path: Path, chunk: int = 1 << 24) -> bool:
    """Whether the file holds anything shaped like a systemd recovery key: a run of 71 modhex
    characters and dashes found fast (translate + find), then matched exactly; the holes of a
    sparse image are skipped (SEEK_DATA)."""
    runs = bytes(1 if chr(c) in "cbdefghijklnrtuv-" else 0 for c in range(256))
    with path.open("rb") as fh:
        size, pos = path.stat().st_size, 0
        while pos < size:
            try:
                pos = os.lseek(fh.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                return False
            fh.seek(max(pos - 80, 0))
            data = fh.read(chunk + 80)
            if data.translate(runs).find(b"\1" * 71) >= 0 and KEY_BYTES.search(data):
                return True
            pos += chunk
    return False


def section_span(pe: bytes, name: str) -> tuple[int, int]:
    """(file offset, size) of a PE section's data (PE/COFF: the section table follows the
    optional header; each entry is 40 bytes: name, VirtualSize, VirtualAddress,
    SizeOfRawData, PointerToRawData, ...)."""
    coff = struct.unpack_from("<I", pe, 0x3C)[0] + 4
    count, optional = (
        struct.unpack_from("<H", pe, coff + 2)[0],
        struct.unpack_from("<H", pe, coff + 16)[0],
    )
    table = coff + 20 + optional
    for i in range(count):
        entry = table + 40 * i
        if pe[entry : entry + 8].rstrip(b"\0").decode() == name:
            vsize, _, raw_size, raw_at = struct.unpack_from("<IIII", pe, entry + 8)
            return raw_at, min(vsize, raw_size)
    raise AssertionError(f"no {name} section")


def change_cmdline(built: Built, disk: Path, uki: Path) -> None:
    """The ESP's UKI with one kernel parameter changed in .cmdline, its .pcrsig kept, signed
    again for Secure Boot with the same db key: the firmware boots it, PCR 11 differs."""
    offset = esp(built)["offset"]
    (name,) = [n for n in list_vfat_dir(disk, offset, "/EFI/Linux") if n.endswith(".efi")]
    data = bytearray(read_vfat_file(disk, offset, f"/EFI/Linux/{name}"))
    at, size = section_span(bytes(data), ".cmdline")
    cmdline = bytes(data[at : at + size])
    changed = cmdline.replace(b"console=tty0", b"console=tty1", 1)
    assert changed != cmdline and len(changed) == len(cmdline), cmdline
    data[at : at + size] = changed
    uki.write_bytes(bytes(data))
    subprocess.run(["sbattach", "--remove", str(uki)], check=True)
    keys = load_keys(default_keys_dir(paths.cache_dir()))
    sign_pe(uki, keys)
    subprocess.run(
        ["mcopy", "-o", "-i", f"{disk}@@{offset}", str(uki), f"::/EFI/Linux/{name}"],
        check=True,
        env={**MTOOLS_ENV, "PATH": "/usr/bin:/bin"},
    )


def test_uki_virt_packages_carry_the_policy_too(
    images: tuple[Built, Built], module_tmp: ModuleTmp
) -> None:
    """`uki-virt build --pcr-keys`: the packaged UKI carries a valid signature by the key for
    every phase (checked offline as the image build checks its own UKI)."""
    where = module_tmp.mktemp("sealed-uki-virt")
    keys = images[0].keys
    composer("uki-virt", "build", "--distro", "debian-13", "-o", str(where / "repo"),
             "--pcr-keys", str(keys))  # fmt: skip
    (deb,) = (where / "repo").glob("uki-virt-*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(where / "x")], check=True)
    (uki,) = (where / "x").glob("usr/lib/modules/*/vmlinuz-virt.efi")
    policy = signed_policy(uki_sections(uki))
    assert policy is not None and policy.stray == 0
    assert policy.fingerprint == fingerprint_of((keys / PUBLIC_FILE).read_bytes())
    assert policy.signed == PHASES[1:]
