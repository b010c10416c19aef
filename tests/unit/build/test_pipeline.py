"""Planted links, devices and missing directories at every place a command writes: refused
with a clear error, the victim untouched, no traceback. Plus the modes of what holds secrets."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from composer.build.bootchain.chain import secureboot_keys
from composer.core.files import OutputPathError, copy_into_dir
from composer.judge.boot import _keep
from composer.judge.verdict import Verdict
from composer.plan.plan import plan_text
from composer.toolchain.secureboot import SecureBootKeyError, generate_keys

from ..cli_run import ROOT, cli

KS_BLUEPRINT = ROOT / "blueprints/fedora-uki-sdboot.toml"
VICTIM = "host file: must stay as it is\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim"
    v.write_text(VICTIM)
    os.chmod(v, 0o644)
    return v


@pytest.fixture
def image(tmp_path: Path) -> Path:
    img = tmp_path / "disk.raw"
    with open(img, "wb") as fh:
        fh.truncate(1 << 20)
    return img


def _refused(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _targets(tmp_path: Path, victim: Path) -> dict[str, tuple[Path, str]]:
    link = tmp_path / "planted"
    link.symlink_to(victim)
    return {
        "planted symlink": (link, "symbolic link"),
        "device node": (Path("/dev/null"), "character device"),
        "missing directory": (tmp_path / "no/such/dir/out", "does not exist"),
        "a directory": (tmp_path, "a directory"),
    }


@pytest.mark.parametrize(
    "kind", ["planted symlink", "device node", "missing directory", "a directory"]
)
def test_kickstart_output(kind: str, tmp_path: Path, victim: Path) -> None:
    target, words = _targets(tmp_path, victim)[kind]
    _refused(cli("kickstart", KS_BLUEPRINT, "-o", target), words)
    assert victim.read_text() == VICTIM and stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("kind", ["planted symlink", "device node", "missing directory"])
@pytest.mark.parametrize("option", ["--json-file", "--junit"])
def test_boot_reports_are_checked_before_booting(
    kind: str, option: str, tmp_path: Path, victim: Path, image: Path
) -> None:
    target, words = _targets(tmp_path, victim)[kind]
    _refused(cli("boot", image, option, target), words)  # exits at once: no QEMU ran
    assert victim.read_text() == VICTIM


@pytest.mark.parametrize("kind", ["planted symlink", "device node", "missing directory"])
def test_fixup_copy_output(kind: str, tmp_path: Path, victim: Path, image: Path) -> None:
    target, words = _targets(tmp_path, victim)[kind]
    _refused(cli("fixup", image, "-o", target), words)  # before the copy and libguestfs
    assert victim.read_text() == VICTIM
    assert not list(tmp_path.glob(".*tmp")) and not list(tmp_path.glob("*.partial"))


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
def test_boot_vars_must_be_raw(tmp_path: Path, image: Path) -> None:
    qcow = tmp_path / "vars.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", qcow, "1M"], check=True)
    _refused(cli("boot", image, "--vars", qcow), "a varstore is a raw file")


def _work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "tpm").mkdir(parents=True, exist_ok=True)
    (work / "serial.log").write_text("serial\n")
    (work / "tpm/state").write_text("tpm\n")
    (work / "overlay.qcow2").write_text("big")
    return work


def test_keep_dir_that_is_a_planted_link(tmp_path: Path, victim: Path) -> None:
    victims = tmp_path / "victims"
    victims.mkdir()
    keep = tmp_path / "disk.raw.boot"  # the default place, beside the image
    keep.symlink_to(victims)
    with pytest.raises(OutputPathError, match="symbolic link"):
        _keep(_work(tmp_path), keep, Verdict(False, []))
    assert list(victims.iterdir()) == []


def test_keep_dir_with_planted_links_inside(tmp_path: Path, victim: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "verdict.json").symlink_to(victim)
    with pytest.raises(OutputPathError, match="symbolic link"):
        _keep(_work(tmp_path), keep, Verdict(False, []))
    other = tmp_path / "keep2"
    other.mkdir()
    (other / "tpm").symlink_to(tmp_path)  # a planted directory link
    with pytest.raises(OutputPathError, match="symbolic link"):
        _keep(_work(tmp_path), other, Verdict(False, []))
    assert victim.read_text() == VICTIM and not (tmp_path / "state").exists()


def test_keep_dir_is_filled(tmp_path: Path) -> None:
    keep = tmp_path / "logs/one"  # parents are made
    verdict = Verdict(True, [])
    _keep(_work(tmp_path), keep, verdict)
    assert (keep / "serial.log").read_text() == "serial\n"
    assert (keep / "tpm/state").read_text() == "tpm\n"
    assert not (keep / "overlay.qcow2").exists()
    assert verdict.serial_log == keep / "serial.log" and (keep / "verdict.json").is_file()
    _keep(_work(tmp_path), keep, verdict)  # a second boot into the same place replaces


def test_copy_into_dir_refuses_a_device_inside(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    os.mkfifo(keep / "serial.log")
    with pytest.raises(OutputPathError, match="FIFO"):
        copy_into_dir(_work(tmp_path), keep)


def test_keys_generate_never_changes_an_existing_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    proc = cli("keys", "generate", shared)
    _refused(proc, "mode 1777")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777 and list(shared.iterdir()) == []
    link = tmp_path / "link"
    link.symlink_to(shared)
    with pytest.raises(SecureBootKeyError, match="not a directory"):
        generate_keys(link)
    fresh = tmp_path / "fresh"
    generate_keys(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_blueprint_key_directory_must_exist(tmp_path: Path) -> None:
    bp = tmp_path / "bp.toml"
    plan = plan_text('name = "x"\n[secureboot]\nsign = true\nkeys = "typo"\n', str(bp))
    with pytest.raises(SecureBootKeyError, match="no such key directory"):
        secureboot_keys(plan, tmp_path / "cache")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "cache").exists()
    default = plan_text('name = "x"\n[secureboot]\nsign = true\n', str(bp))
    keys, made = secureboot_keys(default, tmp_path / "cache")  # only the default is made
    assert made and stat.S_IMODE(keys.directory.stat().st_mode) == 0o700


def test_kickstart_with_a_password_is_private(tmp_path: Path) -> None:
    bp = tmp_path / "ks.toml"
    bp.write_text(
        KS_BLUEPRINT.read_text()
        + '\n[[customizations.user]]\nname = "ops"\npassword = "$6$s$0123456789abcdef"\n'
    )
    out = tmp_path / "with.ks"
    proc = cli("kickstart", bp, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "--password=" in out.read_text() and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_default_keep_dir_link_is_refused_before_booting(tmp_path: Path, image: Path) -> None:
    victims = tmp_path / "victims"
    victims.mkdir()
    (tmp_path / "disk.raw.boot").symlink_to(victims)  # planted beside the image
    _refused(cli("boot", image), "symbolic link")  # exits at once: no QEMU ran
    _refused(cli("boot", image, "--keep", tmp_path / "disk.raw.boot"), "symbolic link")
    assert list(victims.iterdir()) == []
