"""Boot chains, Secure Boot and output formats, end to end.

Builds three images and boots each once: grub2 (qcow2), a signed uki-direct (qcow2) and a
signed systemd-boot image in every output format (booted as vmdk); then one tampered copy of
the uki-direct image, which the firmware must refuse."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from composer.build.bootchain.chain import default_keys_dir
from composer.core import paths
from composer.core.hashing import sha256_file
from composer.image.read import MTOOLS_ENV, list_vfat_dir, read_vfat_file
from composer.image.varstore import KEY_NAMES, read_varstore
from composer.spec.pe import sections
from composer.toolchain import pcrkey
from composer.toolchain.secureboot import load_keys

from .conftest import (
    ROOT,
    ModuleTmp,
    composer,
    found_in,
    manifest,
    manifest_path,
    private_key_pieces,
)

pytestmark = pytest.mark.integration

GRUB2, DIRECT, SDBOOT_SB = "debian-uki-grub2", "debian-uki-direct", "debian-uki-sdboot-secureboot"


def _build(blueprint: Path, out: Path) -> Path:
    composer("build", str(blueprint), "-o", str(out))
    return out


def _boot(
    image: Path, keep: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    verdict_file = keep / "verdict.out.json"
    keep.mkdir(parents=True, exist_ok=True)
    proc = composer(
        "boot",
        str(image),
        "--json-file",
        str(verdict_file),
        "--keep",
        str(keep),
        *args,
        check=False,
    )
    return proc, json.loads(verdict_file.read_text())


def _checks(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in verdict["checks"]}


def _esp_offset(m: dict[str, Any]) -> int:
    return int(next(p for p in m["disk"]["partitions"] if p["designator"] == "esp")["offset"])


def _title(uki: bytes) -> str:
    s = sections(uki)
    osrel = s[".osrel"].rstrip(b"\0").decode()
    pretty = next(
        ln.split("=", 1)[1].strip('"') for ln in osrel.splitlines() if ln.startswith("PRETTY_NAME=")
    )
    uname = s[".uname"].rstrip(b"\0").decode()
    return f"{pretty} ({uname})"


def _sbverify(path: Path, cert: Path) -> bool:
    return (
        subprocess.run(["sbverify", "--cert", str(cert), str(path)], capture_output=True).returncode
        == 0
    )


@pytest.fixture(scope="module")
def grub2(module_tmp: ModuleTmp) -> Path:
    return _build(ROOT / f"blueprints/{GRUB2}.toml", module_tmp.mktemp("grub2"))


@pytest.fixture(scope="module")
def grub2_raw(grub2: Path) -> Path:
    raw = grub2 / "esp-check.raw"
    subprocess.run(
        ["qemu-img", "convert", "-O", "raw", str(grub2 / f"{GRUB2}.qcow2"), str(raw)], check=True
    )
    return raw


@pytest.fixture(scope="module")
def keys(module_tmp: ModuleTmp) -> Path:
    """Keys made by `dps-composer keys generate`, for the uki-direct image (in the directory
    its blueprint is written to: a blueprint names key directories below its own only)."""
    directory = module_tmp.mktemp("direct-bp") / "sb"
    composer("keys", "generate", str(directory))
    return directory


@pytest.fixture(scope="module")
def direct(module_tmp: ModuleTmp, keys: Path) -> Path:
    """The uki-direct example, signed with ``keys`` (given as [secureboot] keys, relative)."""
    src = (ROOT / f"blueprints/{DIRECT}.toml").read_text()
    assert "sign = true\n" in src
    bp = keys.parent / f"{DIRECT}.toml"
    bp.write_text(src.replace("sign = true\n", f'sign = true\nkeys = "{keys.name}"\n', 1))
    return _build(bp, module_tmp.mktemp("direct"))


@pytest.fixture(scope="module")
def sdboot_sb(module_tmp: ModuleTmp) -> Path:
    """The signed systemd-boot example as it is (keys: the default directory in the cache)."""
    return _build(ROOT / f"blueprints/{SDBOOT_SB}.toml", module_tmp.mktemp("sdboot-sb"))


# --- grub2 ------------------------------------------------------------------------------------


def test_grub2_esp_has_grub_and_a_chainloader_entry_per_uki(grub2: Path, grub2_raw: Path) -> None:
    m = manifest(grub2)
    esp = _esp_offset(m)
    assert m["boot"]["loader"] == "grub2"
    assert list_vfat_dir(grub2_raw, esp, "/EFI") == ["BOOT", "Linux"]  # no systemd-boot
    assert sorted(list_vfat_dir(grub2_raw, esp, "/EFI/BOOT")) == ["BOOTX64.EFI", "grub.cfg"]
    assert b"GNU GRUB" in read_vfat_file(grub2_raw, esp, "/EFI/BOOT/BOOTX64.EFI")
    cfg = read_vfat_file(grub2_raw, esp, "/EFI/BOOT/grub.cfg").decode()
    uki_name = m["uki"]["path"].rsplit("/", 1)[1]
    title = _title(read_vfat_file(grub2_raw, esp, m["uki"]["path"]))
    assert f"menuentry '{title}'" in cfg
    assert f"chainloader '/EFI/Linux/{uki_name}'" in cfg
    assert f"set default='{uki_name.removesuffix('.efi')}'" in cfg
    assert "terminal_output serial console" in cfg and "set timeout=1" in cfg
    out = m["outputs"][0]
    assert (out["format"], out["compression"]) == ("qcow2", "zlib")
    assert "qemu-img check: no errors" in out["checked"]


def test_grub2_boots_and_serial_shows_the_menu(
    grub2: Path, grub2_raw: Path, tmp_path: Path
) -> None:
    m = manifest(grub2)
    title = _title(read_vfat_file(grub2_raw, _esp_offset(m), m["uki"]["path"]))
    proc, verdict = _boot(grub2 / f"{GRUB2}.qcow2", tmp_path / "boot")
    assert proc.returncode == 0 and verdict["passed"], verdict
    serial = (tmp_path / "boot/serial.log").read_bytes().decode(errors="replace")
    assert "GNU GRUB" in serial
    assert title in serial, "grub's menu entry for the UKI is not in the serial log"
    assert f"Booting `{title}'" in serial


# --- uki-direct, signed -----------------------------------------------------------------------


def test_uki_direct_has_no_boot_loader_and_a_boot_entry(direct: Path, keys: Path) -> None:
    m = manifest(direct)
    raw = direct / f"{DIRECT}.raw"
    esp = _esp_offset(m)
    assert m["boot"] == {"loader": "uki-direct", "timeout": None, "binaries": []}
    assert list_vfat_dir(raw, esp, "/") == ["EFI"]  # no loader/ (systemd-boot), no grub
    assert list_vfat_dir(raw, esp, "/EFI") == ["BOOT", "Linux"]
    assert list_vfat_dir(raw, esp, "/EFI/BOOT") == ["BOOTX64.EFI"]
    uki = read_vfat_file(raw, esp, m["uki"]["path"])
    assert read_vfat_file(raw, esp, "/EFI/BOOT/BOOTX64.EFI") == uki
    assert hashlib.sha256(uki).hexdigest() == m["uki"]["sha256"]
    vs = read_varstore(direct / f"{DIRECT}.vars.fd")
    first = vs.boot_order[0]
    assert vs.boot_entries[first]["title"] == _title(uki)
    assert vs.boot_entries[first]["device_path"].endswith(
        "\\" + m["uki"]["path"].replace("/", "\\") + ")"
    )
    assert vs.secure_boot_enable and vs.enrolled == {"PK": 1, "KEK": 1, "db": 1}
    assert m["varstore"]["file"] == f"{DIRECT}.vars.fd"
    assert Path(m["varstore"]["firmware_code"]).exists()
    assert m["expect"]["secure_boot"] is True
    assert m["secureboot"]["keys"] == str(keys)


def test_uki_direct_signed_boots_with_secure_boot_from_its_entry(
    direct: Path, tmp_path: Path
) -> None:
    """With two vCPUs (multi-threaded TCG under the boot tools tree's QEMU): the default of a
    single boot, which the suite's other boots leave for one each (tests/integration/conftest.py)."""
    m = manifest(direct)
    proc, verdict = _boot(direct / f"{DIRECT}.qcow2", tmp_path / "boot", "--vcpus", "2")
    assert proc.returncode == 0 and verdict["passed"], verdict
    assert "vCPUs: 2" in verdict["notes"]
    checks = _checks(verdict)
    assert checks["secure-boot"]["passed"] and verdict["guest"]["secure_boot"] is True
    assert "secboot" in verdict["firmware"] or "secure" in verdict["firmware"]
    serial = (tmp_path / "boot/serial.log").read_bytes().decode(errors="replace")
    first = m["varstore"]["boot_order"][0]
    title = m["varstore"]["boot_entries"][first]["title"]
    assert f'BdsDxe: starting {first} "{title}"' in serial  # the varstore's entry, no loader


def test_tampered_uki_is_refused_by_the_firmware(direct: Path, tmp_path: Path) -> None:
    """The same image with its UKI re-signed by a key the firmware does not know: FAIL, and
    the verdict names secure-boot."""
    m = manifest(direct)
    for name in (f"{DIRECT}.raw", f"{DIRECT}.vars.fd", f"{DIRECT}.manifest.json"):
        shutil.copyfile(direct / name, tmp_path / name)
    raw = tmp_path / f"{DIRECT}.raw"
    esp = _esp_offset(m)
    other = tmp_path / "other-keys"
    composer("keys", "generate", str(other))
    uki = tmp_path / "uki.efi"
    uki.write_bytes(read_vfat_file(raw, esp, m["uki"]["path"]))
    subprocess.run(["sbattach", "--remove", str(uki)], check=True)
    subprocess.run(
        [
            "sbsign",
            "--key",
            str(other / "db.key"),
            "--cert",
            str(other / "db.crt"),
            "--output",
            str(uki),
            str(uki),
        ],
        check=True,
    )
    assert _sbverify(uki, other / "db.crt")
    for dest in (m["uki"]["path"], "EFI/BOOT/BOOTX64.EFI"):
        subprocess.run(
            ["mcopy", "-o", "-i", f"{raw}@@{esp}", str(uki), f"::/{dest}"],
            check=True,
            env={**MTOOLS_ENV, "PATH": "/usr/bin:/bin"},
        )
    # judged against its own manifest on purpose: the image no longer has that sha256
    proc, verdict = _boot(raw, tmp_path / "boot", "--manifest", str(manifest_path(tmp_path)))
    assert proc.returncode == 1 and verdict["passed"] is False
    failed = {c["name"] for c in verdict["checks"] if not c["passed"]}
    assert "secure-boot" in failed, verdict
    assert "FAIL secure-boot" in proc.stdout


# --- systemd-boot, signed, every format -------------------------------------------------------


def test_every_format_is_produced_and_checked(sdboot_sb: Path) -> None:
    m = manifest(sdboot_sb)
    by = {o["format"]: o for o in m["outputs"]}
    assert set(by) == {"raw", "raw.zst", "raw.xz", "qcow2", "vmdk", "vhdx", "vhd"}
    size = m["disk"]["size"]
    for fmt, o in by.items():
        path = sdboot_sb / o["file"]
        assert path.stat().st_size == o["size"]
        assert sha256_file(path) == o["sha256"], fmt
    for fmt, driver in {"qcow2": "qcow2", "vmdk": "vmdk", "vhdx": "vhdx"}.items():
        path = sdboot_sb / by[fmt]["file"]
        check = subprocess.run(
            ["qemu-img", "check", "--output=json", "-f", driver, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(check.stdout)
        assert (
            not report.get("corruptions") and not report.get("leaks") and not report["check-errors"]
        )
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "--output=json", "-f", driver, str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert info["virtual-size"] == size, fmt
    vmdk_info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(sdboot_sb / by["vmdk"]["file"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "streamOptimized" in vmdk_info
    vhd = sdboot_sb / by["vhd"]["file"]
    assert vhd.stat().st_size == size + 512 and size % (1024 * 1024) == 0
    assert vhd.read_bytes()[-512:][:8] == b"conectix"
    raw_sha = by["raw"]["sha256"]
    for fmt, tool in (("raw.zst", "zstd"), ("raw.xz", "xz")):
        dec = subprocess.Popen(
            [tool, "-dc", str(sdboot_sb / by[fmt]["file"])], stdout=subprocess.PIPE
        )
        h = hashlib.sha256()
        assert dec.stdout is not None
        while chunk := dec.stdout.read(4 << 20):
            h.update(chunk)
        assert dec.wait() == 0 and h.hexdigest() == raw_sha, fmt


def test_signed_binaries_and_varstore(sdboot_sb: Path) -> None:
    m = manifest(sdboot_sb)
    keys = load_keys(Path(m["secureboot"]["keys"]))
    assert Path(m["secureboot"]["keys"]) == default_keys_dir(paths.cache_dir())
    raw = sdboot_sb / f"{SDBOOT_SB}.raw"
    esp = _esp_offset(m)
    signed = m["secureboot"]["signed_files"]
    assert set(signed) >= {
        m["uki"]["path"],
        "EFI/systemd/systemd-bootx64.efi",
        "EFI/BOOT/BOOTX64.EFI",
    }
    for rel in signed:
        f = sdboot_sb / "check.efi"
        f.write_bytes(read_vfat_file(raw, esp, rel))
        assert _sbverify(f, keys.cert("db")), rel
        f.unlink()
    vs = read_varstore(sdboot_sb / f"{SDBOOT_SB}.vars.fd")
    assert vs.secure_boot_enable and vs.boot_order == []
    assert m["expect"]["secure_boot"] is True


def test_signed_sdboot_boots_as_vmdk_with_secure_boot(sdboot_sb: Path, tmp_path: Path) -> None:
    proc, verdict = _boot(sdboot_sb / f"{SDBOOT_SB}.vmdk", tmp_path / "boot")
    assert proc.returncode == 0 and verdict["passed"], verdict
    assert _checks(verdict)["secure-boot"]["passed"]
    assert verdict["guest"]["secure_boot"] is True
    assert '"driver": "vmdk"' in (tmp_path / "boot/qemu.cmdline").read_text()


# --- private keys -----------------------------------------------------------------------------


def _needles(key_dir: Path) -> list[bytes]:
    """Pieces of each private key (Secure Boot and PCR signing) as PEM text and DER bytes."""
    pcr = key_dir / pcrkey.PRIVATE_FILE  # keys generate makes the PCR signing pair too
    paths = [key_dir / f"{n}.key" for n in KEY_NAMES] + ([pcr] if pcr.exists() else [])
    return [piece for path in paths for piece in private_key_pieces(path)]


def test_private_keys_are_in_neither_image_nor_log(
    sdboot_sb: Path, direct: Path, keys: Path
) -> None:
    for out, name, key_dir in (
        (sdboot_sb, SDBOOT_SB, Path(manifest(sdboot_sb)["secureboot"]["keys"])),
        (direct, DIRECT, keys),
    ):
        needles = _needles(key_dir)
        assert found_in(key_dir / "db.key", needles), "the scan finds nothing even in the key"
        cert_der = x509.load_pem_x509_certificate((key_dir / "db.crt").read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        # Control: the public db certificate is in the image (the signatures) and the varstore.
        assert found_in(out / f"{name}.raw", [cert_der[-64:]]), "db certificate not found in image"
        assert found_in(out / f"{name}.vars.fd", [cert_der[-64:]])
        for f in (f"{name}.raw", f"{name}.build.log", f"{name}.vars.fd", f"{name}.manifest.json"):
            assert found_in(out / f, needles) == [], f"private key material in {f}"
        for key_file in key_dir.iterdir():
            if key_file.name != pcrkey.PUBLIC_FILE:  # the PCR public key is public (0644)
                assert key_file.stat().st_mode & 0o077 == 0, key_file
