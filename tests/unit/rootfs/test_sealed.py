"""The sealed volumes' files in the image tree: repart definitions, the repart drop-in that binds
them to the signed policy, and the unlock drop-in that fails instead of prompting."""

from __future__ import annotations

import configparser
from pathlib import Path

from composer.plan.plan import plan_text
from composer.rootfs import sealed
from composer.rootfs.intree import Tree

BP = 'name = "s"\ndistro = "debian-13"\n[measured]\nsign_policy = true\nsealed = ["srv", "home"]\n'


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_each_volume_gets_a_definition_and_an_unlock_drop_in(tmp_path: Path) -> None:
    plan = plan_text(BP)
    with Tree(tmp_path) as t:
        sealed.apply(t, plan)
    definitions = sorted((tmp_path / "usr/lib/repart.d").iterdir())
    assert [p.name for p in definitions] == [
        "60-dps-composer-sealed-0-srv.conf",
        "60-dps-composer-sealed-1-home.conf",
    ]
    srv = ini(definitions[0].read_text())["Partition"]
    assert srv["Type"] == "srv" and srv["Encrypt"] == "tpm2" and srv["Format"] == "ext4"
    assert int(srv["SizeMinBytes"]) == int(srv["SizeMaxBytes"]) == plan.sealed_size
    unit = tmp_path / sealed.cryptsetup_dropin_path("home").lstrip("/")
    assert "systemd-cryptsetup@home.service.d" in str(unit)
    assert (tmp_path / sealed.REPART_DROPIN.lstrip("/")).is_file()


def exec_starts(text: str) -> list[str]:
    return [
        ln.removeprefix("ExecStart=") for ln in text.splitlines() if ln.startswith("ExecStart=")
    ]


def test_repart_binds_to_the_stubs_public_key_over_pcr_11_only() -> None:
    text = sealed.repart_dropin()
    service = ini(text)["Service"]
    first, last = exec_starts(text)
    assert first == ""  # the unit's own ExecStart is replaced, not added to
    start = last.split()
    assert start[0] == "systemd-repart"
    assert "--tpm2-public-key=/run/systemd/tpm2-pcr-public-key.pem" in start
    assert "--tpm2-public-key-pcrs=11" in start and "--tpm2-pcrs=" in start
    assert service["StandardError"] == "journal+console"  # a failure says why on the console


def test_the_unlock_never_asks_for_a_passphrase() -> None:
    first, last = exec_starts(sealed.cryptsetup_dropin("srv"))
    assert first == ""  # the generator's ExecStart is replaced, not added to
    argv = last.split()
    assert argv[:3] == ["systemd-cryptsetup", "attach", "srv"]
    assert argv[3] == f"/dev/disk/by-partlabel/{sealed.label('srv')}"
    assert set(argv[5].split(",")) == {"tpm2-device=auto", "headless=true"}


def test_nothing_without_sealed_volumes(tmp_path: Path) -> None:
    with Tree(tmp_path) as t:
        sealed.apply(t, plan_text('name = "p"\n'))
    assert list(tmp_path.iterdir()) == []


def test_a_recovery_key_per_volume_when_asked(tmp_path: Path) -> None:
    plan = plan_text(BP + 'recovery = "console"\n')
    with Tree(tmp_path) as t:
        sealed.apply(t, plan)
    script = tmp_path / sealed.RECOVERY_SCRIPT.lstrip("/")
    assert script.stat().st_mode & 0o777 == 0o755
    assert "--recovery-key --unlock-tpm2-device=auto" in script.read_text()
    unit = ini((tmp_path / sealed.UNIT_DIR.lstrip("/") / sealed.RECOVERY_UNIT).read_text())
    assert unit["Service"]["ExecStart"] == f"{sealed.RECOVERY_SCRIPT} %i"
    assert unit["Service"]["StandardOutput"] == "journal"  # the key goes to /dev/console only
    assert "systemd-repart.service" in unit["Unit"]["After"]
    wants = tmp_path / sealed.UNIT_DIR.lstrip("/") / "multi-user.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == [
        "dps-composer-recovery-key@home.service",
        "dps-composer-recovery-key@srv.service",
    ]
    assert all(
        p.readlink() == Path("../dps-composer-recovery-key@.service") for p in wants.iterdir()
    )
    # and when the TPM refuses, systemd-cryptsetup may ask for the key
    first, last = exec_starts(sealed.cryptsetup_dropin("srv", plan.recovery))
    assert last.split()[5] == "tpm2-device=auto"


def test_no_recovery_key_by_default(tmp_path: Path) -> None:
    with Tree(tmp_path) as t:
        sealed.apply(t, plan_text(BP))
    assert not (tmp_path / sealed.RECOVERY_SCRIPT.lstrip("/")).exists()
    assert not (tmp_path / sealed.UNIT_DIR.lstrip("/") / "multi-user.target.wants").exists()
