"""judge() on sample guest results and on serial evidence alone; the guest script's JSON."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composer.judge.serial import SerialEvent, scan_text
from composer.judge.verdict import (
    Expectations,
    analyze_timings,
    judge,
    load_expectations,
    parse_check_payload,
)

from .. import manifests

ROOT = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
PCR11 = "86448674cf7e3da49d8758d8b83dcdac79a0d1989f87b49fd578a021a595b2f7"
SCRIPT = Path(__file__).parents[3] / "composer" / "data" / "check" / "dps-composer-check"
EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"  # EFI_GLOBAL_VARIABLE
EXP = Expectations(root_type_uuid=ROOT, tpm=True, secure_boot=False, expected_pcrs={11: PCR11})

# What the guest script sent from a real boot (trimmed).
GOOD: dict[str, Any] = {
    "version": 1,
    "uptime": 73.54,
    "kernel": "6.12.107+deb13-amd64",
    "os": {"id": "debian", "version_id": "13"},
    "root": {
        "source": "/dev/vda2",
        "fstype": "ext4",
        "parttype": ROOT,
        "partuuid": "f57d8335-f37f-57dd-b86b-87052b643ecd",
        "gpt_auto_root": "/dev/vda2",
    },
    "cmdline": "console=tty0 console=ttyS0 quiet",
    "system_state": "running",
    "failed_units": [],
    "fstab": [],
    "tpm": {"tpm0": True, "tpmrm0": True, "pcrs": {"7": "65CA", "11": PCR11.upper()}},
    "secure_boot": False,
    "mounts": [{"target": "/", "source": "/dev/vda2", "fstype": "ext4", "parttype": ROOT}],
    "analyze": [
        "Startup finished in 6.213s (kernel) + 16.321s (initrd) + 35.896s (userspace) = 58.431s ",
        "graphical.target reached after 35.803s in userspace.",
    ],
}


def with_(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        target = data
        for key in path:
            target = target[key]
        target[last] = value
    return data


def failed(verdict_checks: list[Any]) -> list[str]:
    return [c.name for c in verdict_checks if not c.passed]


def test_good_result_passes() -> None:
    v = judge(GOOD, [], EXP)
    assert v.passed, v.to_json()
    assert [c.name for c in v.checks] == [
        "booted",
        "root-discovered",
        "no-root-on-cmdline",
        "no-fstab-root",
        "no-failed-units",
        "tpm",
        "pcr-11",
        "secure-boot",
    ]
    assert "root-x86-64" in v.checks[1].detail and "/dev/gpt-auto-root" in v.checks[1].detail
    assert v.timings["guest-userspace"] == pytest.approx(35.896)


@pytest.mark.parametrize(
    ("changes", "failing"),
    [
        ({"root__parttype": "0fc63daf-8483-4772-8e79-3d69d8477de4"}, ["root-discovered"]),
        ({"cmdline": "root=/dev/vda2 quiet"}, ["root-discovered", "no-root-on-cmdline"]),
        ({"fstab": ["UUID=abc / ext4 defaults 0 1"]}, ["root-discovered", "no-fstab-root"]),
        ({"failed_units": ["● foo.service loaded failed failed Foo"]}, ["no-failed-units"]),
        ({"tpm": {"tpm0": False, "tpmrm0": False, "pcrs": {}}}, ["tpm", "pcr-11"]),
        ({"secure_boot": True}, ["secure-boot"]),
        ({"tpm__pcrs": {"11": "00" * 32}}, ["pcr-11"]),
    ],
)
def test_each_failure_kind(changes: dict[str, Any], failing: list[str]) -> None:
    v = judge(with_(**changes), [], EXP)
    assert not v.passed
    assert failed(v.checks) == failing


def test_failed_unit_names_in_detail() -> None:
    v = judge(with_(failed_units=["● foo.service loaded failed failed Foo"]), [], EXP)
    check = v.check("no-failed-units")
    assert check is not None and check.detail == "failed: foo.service"


def test_optional_checks_follow_expectations() -> None:
    v = judge(with_(secure_boot=None), [], Expectations(ROOT, tpm=False, secure_boot=None))
    assert v.passed and {c.name for c in v.checks}.isdisjoint({"tpm", "secure-boot", "pcr-11"})


def test_unreadable_payload() -> None:
    bad = parse_check_payload('{"version":1,"cmdline":"unterminated')
    v = judge(bad, [], EXP)
    assert failed(v.checks) == ["check-result"] and v.check("booted") is not None


ROOT_TIMEOUT_LOG = (
    'BdsDxe: starting Boot0001 "UEFI Misc Device"\r\n'
    "[    0.000000] Linux version 6.12.107+deb13-amd64\r\n"
    "[ TIME ] Timed out waiting for device dev-gpt\\x2dauto\\x2droot.device - /dev/gpt-auto-root.\r\n"
    "You are in emergency mode.\r\n"
)


def test_no_result_root_timeout_names_root_discovered() -> None:
    v = judge(None, scan_text(ROOT_TIMEOUT_LOG), EXP)
    assert failed(v.checks) == ["booted", "root-discovered"]
    root = v.check("root-discovered")
    assert root is not None and "Timed out waiting for device" in root.detail
    booted = v.check("booted")
    assert booted is not None and "emergency mode" in booted.detail


def test_no_result_secure_boot_violation() -> None:
    log = 'BdsDxe: failed to load Boot0001 "UEFI Misc Device": Access Denied\r\n'
    v = judge(None, scan_text(log), EXP)
    assert failed(v.checks) == ["booted", "secure-boot"]


def test_no_result_timeout_reports_last_milestone() -> None:
    events = [
        SerialEvent("milestone", "firmware", 8.0, "BdsDxe: starting Boot0001"),
        SerialEvent("milestone", "kernel", 20.0, "Linux version 6.12"),
        SerialEvent("fatal", "timeout", 600.0, "no check result within 600 s", "booted"),
    ]
    v = judge(None, events, EXP)
    assert failed(v.checks) == ["booted"]
    assert "last milestone: kernel at 20.0 s" in v.checks[0].detail
    assert "within 600 s" in v.checks[0].detail
    assert v.timings == {"firmware": 8.0, "kernel": 20.0}


def test_verdict_json_roundtrip() -> None:
    data = json.loads(judge(GOOD, [], EXP).to_json())
    assert data["passed"] is True and data["checks"][0]["name"] == "booted"


def test_analyze_timings_with_minutes() -> None:
    line = "Startup finished in 2.1s (firmware) + 830ms (loader) + 1min 3.5s (userspace) = 1min 6s"
    assert analyze_timings({"analyze": [line]}) == {
        "guest-firmware": 2.1,
        "guest-loader": 0.83,
        "guest-userspace": 63.5,
    }


def test_expectations_from_manifest(tmp_path: Path) -> None:
    image = tmp_path / "img.qcow2"
    image.write_bytes(b"disk")
    assert load_expectations(image).root_type_uuid == ROOT  # no manifest: DPS default
    manifests.write(
        tmp_path / "img.manifest.json",
        architecture="aarch64",
        disk={"partitions": []},
        outputs=[manifests.output("img.qcow2", b"disk")],
        expect={"root_type_uuid": "", "tpm": False, "secure_boot": True, "pcrs": {"11": "AB"}},
    )
    exp = load_expectations(image)
    assert exp == Expectations(
        root_type_uuid="b921b045-1df0-41c3-af44-4c6f280d3fae",
        tpm=False,
        secure_boot=True,
        expected_pcrs={11: "ab"},
        architecture="aarch64",
    )


# --- the guest script, run with the host's /bin/sh -------------------------------------------

SH = shutil.which("dash") or shutil.which("sh")
needs_sh = pytest.mark.skipif(SH is None, reason="no POSIX shell")


def run_lib(code: str, env: dict[str, str] | None = None) -> str:
    assert SH is not None
    full = {**os.environ, "DPS_COMPOSER_CHECK_LIB": "1", **(env or {})}
    proc = subprocess.run(
        [SH, "-c", f'. "{SCRIPT}"; {code}'], env=full, capture_output=True, check=True
    )
    return proc.stdout.decode("utf-8", errors="replace")


NASTY = [
    "",
    "plain",
    'quote " and backslash \\ and \\n literal',
    "tab\tcr\rbell\x07esc\x1b[1mform\x0cfeed\x7f",
    "two\nlines",
    "trailing newline\n",
    "unicode é € 𝄞",
    "-n -e %s %d",
]


@needs_sh
@pytest.mark.parametrize("value", NASTY)
def test_json_str_escapes(value: str) -> None:
    out = run_lib('json_str "$V"', {"V": value})
    assert json.loads(out) == value.removesuffix("\n")


@needs_sh
@settings(max_examples=25, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_json_str_roundtrip(value: str) -> None:
    assert json.loads(run_lib('json_str "$V"', {"V": value})) == value.removesuffix("\n")


@needs_sh
def test_secure_boot_state_from_efivar(tmp_path: Path) -> None:
    var = tmp_path / f"SecureBoot-{EFI_GLOBAL}"
    env = {"EFIVARS_DIR": str(tmp_path)}
    assert run_lib("secure_boot_state", env) == "null"  # no variable
    var.write_bytes(b"\x06\0\0\0\x00")
    assert run_lib("secure_boot_state", env) == "false"
    var.write_bytes(b"\x06\0\0\0\x01")
    assert run_lib("secure_boot_state", env) == "true"


@needs_sh
def test_json_lines_and_helpers() -> None:
    lines = run_lib("printf 'a \"b\"\\n\\tc\\\\\\n\\nlast' | json_lines")
    assert json.loads(lines) == ['a "b"', "\tc\\", "", "last"]
    assert run_lib("printf '' | json_lines") == "[]"
    assert run_lib("json_num 12.5; json_num 1.2.3; json_num abc") == "12.5nullnull"
    assert run_lib("json_str_or_null ''; json_str_or_null x") == 'null"x"'
    assert run_lib("json_bool true; json_bool false") == "truefalse"


@needs_sh
def test_emit_json_on_this_host_is_valid(tmp_path: Path) -> None:
    pcrs = tmp_path / "pcr-sha256"
    pcrs.mkdir()
    (pcrs / "11").write_text(PCR11.upper() + "\n")
    (pcrs / "7").write_text("AB\n")
    efivars = tmp_path / "efivars"
    efivars.mkdir()
    (efivars / f"SecureBoot-{EFI_GLOBAL}").write_bytes(b"\x06\0\0\0\x01")
    out = run_lib("emit_json", {"PCR_DIR": str(pcrs), "EFIVARS_DIR": str(efivars)})
    data = json.loads(out)
    assert data["version"] == 1 and data["tpm"]["pcrs"] == {"7": "AB", "11": PCR11.upper()}
    assert data["secure_boot"] is True and data["efi"]["secure_boot_var"] == "6 0 0 0 1"
    assert isinstance(data["mounts"], list) and isinstance(data["failed_units"], list)
    assert "\n" not in out
    judge(data, [], EXP)  # whatever this host is, the judge takes it


@needs_sh
def test_cpu_seconds_from_proc_whole_or_null(tmp_path: Path) -> None:
    """/proc/stat's ticks (USER_HZ) as seconds; a /proc missing a file gives null, never half
    an object."""
    (tmp_path / "stat").write_text(
        "cpu  3404 10 4983 15 9 0 5 0 0 0\ncpu0 3404 10 4983 15 9 0 5 0 0 0\nintr 1 2\n"
    )
    hz = int(subprocess.run(["getconf", "CLK_TCK"], capture_output=True, text=True).stdout)
    env = {"PROC_DIR": str(tmp_path)}
    assert run_lib("json_cpu", env) == "null"  # no uptime
    (tmp_path / "uptime").write_text("")
    assert run_lib("json_cpu", env) == "null"  # an uptime that says nothing
    (tmp_path / "uptime").write_text("86.17 0.15\n")
    cpu = json.loads(run_lib("json_cpu", env))
    assert cpu == {"cpus": 1, "uptime_s": 86.17, "busy_s": round(8402 / hz, 2),
                   "idle_s": round(24 / hz, 2), "user_s": round(3414 / hz, 2),
                   "system_s": round(4988 / hz, 2)}  # fmt: skip


@needs_sh
@pytest.mark.parametrize(("credential", "blamed"), [(None, False), ("1", False), ("profile", True)])
def test_blame_only_when_the_boot_asks_for_a_profile(
    tmp_path: Path, credential: str | None, blamed: bool
) -> None:
    """`systemd-analyze blame` (8 s of a TCG boot), critical-chain and the units' CPU time
    run only with dps-composer.check=profile."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    called = tmp_path / "called"
    # `systemctl show` prints a unit's properties in its own order, a blank line between units
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(
        f'#!/bin/sh\necho "systemctl $1" >>{called}\n[ "$1" = show ] || exit 0\n'
        "printf 'CPUUsageNSec=2500000000\\nId=init.scope\\n\\n"
        "Id=-.slice\\nCPUUsageNSec=9000000000\\n\\n"
        "Id=gone.service\\nCPUUsageNSec=[not set]\\n\\n"
        "CPUUsageNSec=1234567\\nId=b.service\\n\\n"
        "Id=system-modprobe.slice\\nCPUUsageNSec=700000000\\n'\n"
    )
    systemctl.chmod(0o755)
    fake = bin_dir / "systemd-analyze"
    fake.write_text(
        f'#!/bin/sh\necho "$1" >>{called}\n'
        'if [ "$1" = blame ]; then printf "4.7s a.service\\n1s dev-vda.device\\n"; fi\n'
        'if [ "$1" = critical-chain ]; then '
        'printf "multi-user.target @9s\\n\\342\\224\\224\\342\\224\\200a.service @4s +4.7s\\n"; fi\n'
    )
    fake.chmod(0o755)
    cred = tmp_path / "dps-composer.check"
    if credential is not None:
        cred.write_text(credential)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CHECK_CREDENTIAL": str(cred)}
    data = json.loads(run_lib("emit_json", env))
    assert ("blame" in data) is blamed and ("critical_chain" in data) is blamed
    assert ("blame" in called.read_text().split()) is blamed
    assert ("critical-chain" in called.read_text().split()) is blamed
    assert ("unit_cpu" in data) is blamed and ("cpu" in data) is blamed
    assert ("systemctl show" in called.read_text()) is blamed
    if blamed:
        # most CPU first; the root slice (everything) and units without a number left out
        assert data["unit_cpu"] == ["2.500s init.scope", "0.700s system-modprobe.slice",
                                    "0.001s b.service"]  # fmt: skip
        cpu = data["cpu"]  # this host's /proc/stat: whatever it says, in seconds
        assert set(cpu) == {"cpus", "uptime_s", "busy_s", "idle_s", "user_s", "system_s"}
        assert cpu["cpus"] >= 1 and cpu["busy_s"] > 0 and cpu["uptime_s"] > 0
        assert cpu["user_s"] + cpu["system_s"] <= cpu["busy_s"] + 0.02
        assert data["blame"] == ["4.7s a.service"]  # devices left out
        chain = ["multi-user.target @9s", "\u2514\u2500a.service @4s +4.7s"]
        assert data["critical_chain"] == chain  # the tree's UTF-8 drawing kept


def test_failed_units_name_their_last_journal_line() -> None:
    guest = with_(failed_units=["foo.service loaded failed failed Foo"])
    guest["failed_logs"] = ["foo.service: starting", "foo.service: Failed to frob: EIO"]
    check = judge(guest, [], EXP).check("no-failed-units")
    assert check is not None
    assert check.detail == "failed: foo.service (foo.service: Failed to frob: EIO)"


def test_firmware_and_loader_times_from_loader_variables() -> None:
    guest = with_(loader_times={"init_usec": 8_500_000, "exec_usec": 19_250_000})
    t = analyze_timings(guest)
    assert t["guest-firmware"] == 8.5 and t["guest-loader"] == 10.75
    assert t["guest-userspace"] == pytest.approx(35.896)
    assert "guest-loader" not in analyze_timings(
        with_(loader_times={"init_usec": 5, "exec_usec": 0})
    )


@needs_sh
def test_the_summary_ends_with_the_line_that_ends_a_throwaway_watch(tmp_path: Path) -> None:
    """The console summary's last line is the "summary" milestone (composer/judge/monitor.py
    ends a throw-away boot's watch there), after the summary's first, "check", line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text('#!/bin/sh\n[ "$1" = is-system-running ] && echo running\nexit 0\n')
    fake.chmod(0o755)
    out = run_lib("summary", {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert out.splitlines()[-1] == "dps-composer-check: summary ends", out
    events = scan_text(out)
    assert [e.name for e in events if e.kind == "milestone"] == ["check", "summary"], out


def _logging_tools(bin_dir: Path, log: Path, names: dict[str, str]) -> dict[str, str]:
    """Programs named ``names`` in ``bin_dir`` that log their name and arguments to ``log``
    and print their text; the environment that puts them first on PATH."""
    bin_dir.mkdir()
    for name, text in names.items():
        fake = bin_dir / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >>{log}\nprintf "%s" "{text}"\n')
        fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


@needs_sh
def test_the_record_and_summary_ask_each_shared_fact_once(tmp_path: Path) -> None:
    """The record and the console summary share the root, state, failed units and mounts
    (gather: each process costs under TCG), and a partition's type and UUID come from udev's
    database read by the shell: no udevadm or lsblk while it answers."""
    log = tmp_path / "calls"
    env = _logging_tools(
        tmp_path / "bin",
        log,
        {
            "findmnt": "/dev/vdz2 ext4",  # both of its uses print the same columns here
            "systemctl": "running",
            "udevadm": "",
            "lsblk": "",
        },
    )
    sys_block, udev = tmp_path / "sys-block", tmp_path / "udev-data"
    (sys_block / "vdz2").mkdir(parents=True)
    (sys_block / "vdz2" / "dev").write_text("254:2\n")
    (sys_block / "vdz2" / "size").write_text("4096\n")
    udev.mkdir()
    (udev / "b254:2").write_text(
        f"S:disk/by-partuuid/f00\nE:ID_PART_ENTRY_UUID=f00\nE:ID_PART_ENTRY_TYPE={ROOT}\nG:systemd\n"
    )
    env |= {"SYS_BLOCK": str(sys_block), "UDEV_DATA": str(udev)}
    out = run_lib("gather; emit_json; echo; summary", env)
    record, summary = out.split("\n", 1)
    data = json.loads(record)
    assert data["root"]["source"] == "/dev/vdz2" and data["root"]["fstype"] == "ext4"
    assert data["root"]["parttype"] == ROOT and data["root"]["partuuid"] == "f00"
    assert data["system_state"] == "running"
    assert f"root=/dev/vdz2 type={ROOT}" in summary and "its partition 2097152 bytes" in summary
    calls = [ln.split()[0] for ln in log.read_text().splitlines()]
    assert "udevadm" not in calls and "lsblk" not in calls, calls
    assert calls.count("findmnt") == 2 and calls.count("systemctl") == 2, calls


@needs_sh
def test_os_release_fields_lose_one_pair_of_quotes(tmp_path: Path) -> None:
    """os_field reads os-release with the shell (no sed): KEY="value" and KEY='value' and
    KEY=value alike, the first line for a key only."""
    os_release = tmp_path / "os-release"
    os_release.write_text("NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID='13'\nID=other\n")
    code = "os_field NAME; echo; os_field ID; echo; os_field VERSION_ID; echo; os_field MISSING"
    out = run_lib(code, {"OS_RELEASE": f"{tmp_path}/missing {os_release}"})
    assert out.split("\n") == ["Debian GNU/Linux", "debian", "13", ""]
