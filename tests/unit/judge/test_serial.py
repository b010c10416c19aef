"""Serial text cleaning, milestones, fatal signs and the tailer (fake clock, real files)."""

from __future__ import annotations

from pathlib import Path

from composer.judge.serial import (
    SerialEvent,
    SerialScanner,
    SerialTail,
    clean_lines,
    last_milestone,
    milestone_times,
    scan_text,
    strip_ansi,
)

# Shapes taken from real OVMF / systemd-boot / kernel / systemd output under QEMU.
OVMF = (
    '\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 "UEFI Misc Device" '
    "from PciRoot(0x0)/Pci(0x2,0x0)\r\n"
    'BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x2,0x0)\r\n'
    "\x1b[!p\x1b]104\x07\x1b[?7h"
)
LINUX = (
    "[    0.000000] Linux version 6.12.107+deb13-amd64 (debian-kernel@lists.debian.org)\r\n"
    "[\x1b[0;32m  OK  \x1b[0m] Mounted \x1b[0;1;39msysroot.mount\x1b[0m - /sysroot.\r\n"
    "[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mmulti-user.target\x1b[0m - Multi-User System.\r\n"
    "\x1b[6n\x1b[32766;32766H\x1b[6n\r\r\n"
    "dps-debian login: \ndps-composer-check: state=running root=/dev/vda2\r\n"
    "dps-composer-check: summary ends\r\n"
    "[   82.760185] reboot: Power down\r\n"
)


def test_strip_ansi_removes_escapes_and_carriage_returns() -> None:
    text = strip_ansi(OVMF + LINUX)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "[  OK  ] Mounted sysroot.mount - /sysroot." in text.splitlines()


def test_cursor_jumps_break_lines() -> None:
    shell = "Press ESC in 2 seconds\x1b[05;01HPress ESC in 1 seconds\r\n"
    assert clean_lines(shell) == ["Press ESC in 2 seconds", "Press ESC in 1 seconds"]


def test_clean_lines_drops_blank_lines() -> None:
    lines = clean_lines(OVMF)
    assert lines[0].startswith("BdsDxe: loading Boot0001")
    assert len(lines) == 2


def test_milestones_in_order() -> None:
    events = scan_text(OVMF + LINUX)
    assert [e.name for e in events if e.kind == "milestone"] == [
        "firmware",
        "kernel",
        "root-mounted",
        "multi-user",
        "login",
        "check",
        "summary",
        "power-off",
    ]
    assert not [e for e in events if e.kind == "fatal"]
    last = last_milestone(events)
    assert last is not None and last.name == "power-off"


def milestones(events: list[SerialEvent]) -> set[str]:
    return {e.name for e in events if e.kind == "milestone"}


def test_login_prompt_followed_by_a_console_message_on_its_line() -> None:
    """The getty's prompt has no line end: a kernel message printed right after it lands on the
    same line (seen in a CI run, which then waited for its timeout)."""
    for tail in ("[   49.970755] kvm_amd: Nested Virtualization enabled", "[  OK  ] Started x."):
        assert "login" in milestones(
            scan_text(
                f"\r\nDebian GNU/Linux 13 dps-debian ttyS0\r\n\r\ndps-debian login: {tail}\r\n"
            )
        )
    assert "login" in milestones(scan_text("login: [   49.9] x\r\n"))
    for line in (
        "[   12.1] systemd-logind: login: x",
        "Starting systemd-logind.service - User Login",
    ):
        assert "login" not in milestones(scan_text(line + "\r\n"))


def test_milestone_times_are_first_sighting() -> None:
    scanner = SerialScanner()
    scanner.feed("BdsDxe: loading Boot0001", 8.5)
    scanner.feed("BdsDxe: starting Boot0001", 9.0)
    scanner.feed("[    0.000000] Linux version 6.12.0", 20.25)
    assert milestone_times(scanner.events) == {"firmware": 8.5, "kernel": 20.25}


def test_fatal_gpt_auto_root_timeout_with_unit_escaping() -> None:
    line = (
        "[\x1b[0;1;31m TIME \x1b[0m] Timed out waiting for device "
        "\x1b[0;1;39mdev-gpt\\x2dauto\\x2droot.device\x1b[0m - /dev/gpt-auto-root.\r\n"
        "[\x1b[0;1;31mDEPEND\x1b[0m] Dependency failed for \x1b[0;1;39msysroot.mount\x1b[0m\r\n"
        'You are in emergency mode. After logging in, type "journalctl -xb"\r\n'
    )
    fatal = [e for e in scan_text(line) if e.kind == "fatal"]
    assert [(e.name, e.check) for e in fatal] == [
        ("root-timeout", "root-discovered"),
        ("root-dependency", "root-discovered"),
        ("emergency", "booted"),
    ]
    assert "gpt\\x2dauto\\x2droot" in fatal[0].line


def test_fatal_firmware_and_kernel_signs() -> None:
    text = (
        'BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0): Access Denied\r\n'
        "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n"
    )
    names = {e.name: e.check for e in scan_text(text) if e.kind == "fatal"}
    assert names == {
        "sb-violation": "secure-boot",
        "kernel-panic": "booted",
        "root-missing": "root-discovered",
    }
    assert [e.name for e in scan_text("Security Violation\r\n")] == ["sb-violation"]


def test_unrelated_access_denied_is_not_fatal() -> None:
    assert scan_text("sshd: access denied for user x\r\n") == []


def test_tail_times_lines_when_they_arrive(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    now = [100.0]
    tail = SerialTail(log, start=100.0, clock=lambda: now[0])
    assert tail.poll() == ([], "")  # file not there yet
    log.write_bytes(b"\x1b[2JBdsDxe: starting Boot0001\r\nLinux vers")
    now[0] = 108.0
    lines, partial = tail.poll()
    assert lines == [(8.0, "BdsDxe: starting Boot0001")]
    assert partial == "Linux vers"
    with open(log, "ab") as fh:
        fh.write("ion 6.12 \u00e9\r\nShell> ".encode())
    now[0] = 120.5
    lines, partial = tail.poll()
    assert lines == [(20.5, "Linux version 6.12 \u00e9")]
    assert partial == "Shell>"


def test_tail_handles_split_utf8(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    data = "caf\u00e9 ok\n".encode()
    log.write_bytes(data[:4])
    tail = SerialTail(log, start=0.0, clock=lambda: 1.0)
    tail.poll()
    with open(log, "ab") as fh:
        fh.write(data[4:])
    assert tail.poll()[0] == [(1.0, "caf\u00e9 ok")]


# Console text of boots that wait for a person. FIRSTBOOT is captured from a first boot of a
# trixie image (systemd 257) that lacks a root password.
FIRSTBOOT = (
    "[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39msystemd-udevd.service\x1b[0m - Ru\u2026anager "
    "for Device Events and Files.\r\r\n\x1b[!p\x1b]104\x07\x1b[?7h\r\n"
    "Welcome to your new installation of \x1b[0mDebian GNU/Linux 13 (trixie)\x1b[0m!\r\n\r\n"
    "Please configure your system!\r\n\r\n-- Press any key to proceed --\r\n"
)
EMERGENCY = (
    'You are in emergency mode. After logging in, type "journalctl -xb" to view\r\n'
    'system logs, "systemctl reboot" to reboot, or "exit"\r\n'
    "to continue bootup.\r\n"
    "Give root password for maintenance\r\n(or press Control-D to continue): "
)
LOCKED = (
    "Cannot open access to console, the root account is locked.\r\n"
    "See sulogin(8) man page for more details.\r\n\r\nPress Enter to continue.\r\n"
)
PASSPHRASE = "\U0001f510 Please enter passphrase for disk root (luks-3f1c\u2026): "


def test_console_prompts_are_fatal_and_name_their_check() -> None:
    for text, name in (
        (FIRSTBOOT, "firstboot-prompt"),
        (EMERGENCY, "maintenance-prompt"),
        (LOCKED, "maintenance-prompt"),
        (PASSPHRASE, "passphrase-prompt"),
        ("Please configure the system!\n", "firstboot-prompt"),  # systemd 258 and later
        ("\u2023 Please enter a new root password (empty to skip): ", "firstboot-prompt"),
        ("Please enter system keymap name or number (empty to skip): ", "firstboot-prompt"),
    ):
        fatal = [e for e in scan_text(text) if e.kind == "fatal" and e.name == name]
        assert fatal and fatal[0].check == "no-console-prompt", (name, scan_text(text))


def test_normal_boot_output_has_no_prompt() -> None:
    assert not [e for e in scan_text(OVMF + LINUX) if e.check == "no-console-prompt"]
    text = "[  OK  ] Finished systemd-firstboot.service - First Boot Wizard.\r\n"
    assert not [e for e in scan_text(text) if e.kind == "fatal"]


def test_prompt_on_an_unfinished_line_is_seen(tmp_path: Path) -> None:
    """A question waits on its own line, with no newline: the tail hands it out as the partial
    line, and the scanner sees it there."""
    log = tmp_path / "serial.log"
    log.write_bytes(("[  OK  ] Reached target cryptsetup-pre.target.\r\n" + PASSPHRASE).encode())
    lines, partial = SerialTail(log, start=0.0, clock=lambda: 1.0).poll()
    assert partial.startswith("\U0001f510 Please enter passphrase")
    scanner = SerialScanner()
    scanner.feed_all(lines)
    scanner.feed(partial, 1.0, remember=False)
    assert [e.name for e in scanner.events if e.kind == "fatal"] == ["passphrase-prompt"]


def test_tpm_timeouts_are_host_signs_not_fatal() -> None:
    text = (
        "[   74.190411] tpm tpm0: Operation Timed out\r\n"
        "[   74.190999] tpm tpm0: tpm_try_transmit: send(): error -62\r\n"
    )
    events = scan_text(text)
    assert [(e.kind, e.name) for e in events] == [
        ("host", "tpm-timeout"),
        ("host", "tpm-transmit"),
    ]


# --- no root partition: the initrd still waits for /dev/gpt-auto-root after the disk scan ---

SCAN = "[   19.892792]  vda: vda1 vda2"


def root_job(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    shown = f"{minutes}min {rest}s" if minutes else f"{rest}s"
    return f"[ ***  ] Job dev-gpt\\x2dauto\\x2droot.device/start running ({shown} / 5min)"


def fatal_names(lines: list[str]) -> list[tuple[str, str | None]]:
    scanner = SerialScanner()
    for i, line in enumerate(lines):
        scanner.feed(line, float(i))
    return [(e.name, e.check) for e in scanner.events if e.kind == "fatal"]


def test_root_not_found_once_the_root_job_waits_long_after_the_partition_scan() -> None:
    lines = [root_job(s) for s in range(5, 10)] + [SCAN] + [root_job(s) for s in range(10, 45)]
    assert fatal_names(lines) == [("root-not-found", "root-discovered")]
    scanner = SerialScanner()
    for i, line in enumerate(lines):
        scanner.feed(line, float(i))
    (event,) = [e for e in scanner.events if e.name == "root-not-found"]
    assert "vda: vda1 vda2" in event.line and "/dev/gpt-auto-root" in event.line
    assert event.t == float(lines.index(root_job(40)))  # 30 s of the job's clock after the scan


def test_no_root_sign_before_the_scan_or_within_the_settle_time() -> None:
    assert fatal_names([root_job(s) for s in range(5, 200)]) == []  # disk not read yet
    assert fatal_names([SCAN] + [root_job(s) for s in range(10, 39)]) == []


def test_minutes_in_the_job_counter_and_the_single_job_form() -> None:
    assert fatal_names([SCAN, root_job(50), root_job(85)]) == [
        ("root-not-found", "root-discovered")
    ]
    single = "A start job is running for /dev/gpt-auto-root ({}s / 5min)"
    assert fatal_names([SCAN, single.format(3), single.format(33)]) == [
        ("root-not-found", "root-discovered")
    ]


def test_a_found_root_never_looks_missing() -> None:
    found = "[  OK  ] Found device dev-gpt\\x2dauto\\x2droot.device - /dev/gpt-auto-root."
    assert fatal_names([root_job(9), SCAN, root_job(10), found, "login: "]) == []
