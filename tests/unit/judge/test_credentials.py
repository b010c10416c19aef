"""The credentials a boot passes: the check's and systemd-firstboot's answers, as QEMU args."""

from __future__ import annotations

from pathlib import Path

from composer.image.firmware import Firmware
from composer.judge.credentials import FIRSTBOOT, boot_credentials, smbios_args
from composer.judge.qemu import QemuConfig, build_command


def test_firstboot_answers_every_question_systemd_firstboot_asks() -> None:
    # systemd-firstboot.service runs --prompt-locale --prompt-keymap --prompt-timezone
    # --prompt-root-password; each has its credential (systemd.system-credentials(7))
    assert set(FIRSTBOOT) == {
        "firstboot.locale",
        "firstboot.keymap",
        "firstboot.timezone",
        "passwd.hashed-password.root",
    }
    # "no root password" is a locked account, not an empty (password-less) one
    assert FIRSTBOOT["passwd.hashed-password.root"].startswith("!")
    assert boot_credentials(False) == {"dps-composer.check": "1"}
    assert boot_credentials(False, profile=True) == {"dps-composer.check": "profile"}


def test_smbios_strings_double_commas() -> None:
    assert smbios_args({"a": "x,y"}) == ["-smbios", "type=11,value=io.systemd.credential:a=x,,y"]


def test_a_boot_command_carries_them(tmp_path: Path) -> None:
    fw = Firmware(
        descriptor=tmp_path / "60-x.json",
        description="test",
        arch="x86_64",
        machine="q35",
        code=tmp_path / "CODE.fd",
        code_format="raw",
        vars_template=tmp_path / "VARS.fd",
        vars_format="raw",
        features=frozenset(),
        requires_smm=False,
    )
    cfg = QemuConfig(fw, tmp_path / "vars.fd", ("-accel", "tcg"), tmp_path / "s", tmp_path / "c")
    argv = build_command("qemu-system-x86_64", cfg)
    strings = [argv[i + 1] for i, a in enumerate(argv) if a == "-smbios"]
    assert "type=11,value=io.systemd.credential:firstboot.timezone=UTC" in strings
    assert "type=11,value=io.systemd.credential:passwd.hashed-password.root=!*" in strings
    assert "type=11,value=io.systemd.credential:dps-composer.check=1" in strings
