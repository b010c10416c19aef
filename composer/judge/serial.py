"""Serial console parsing: strip terminal noise, timestamp lines as they arrive, spot milestones
and fatal signs early (so a boot can fail fast instead of running into the timeout), and the
signs that the host, not the image, let a boot down (an emulated TPM that did not answer in
time)."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from composer.judge.recovery import RecoveryKeys
from composer.judge.unlock_watch import UnlockWatch

# Cursor positioning / screen clearing acts as a line break on a real terminal.
_CURSOR_BREAK = re.compile(r"\x1b\[[0-9;?=]*[HfJ]")
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI … final byte (colours, cursor, modes like ESC[=3h)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC … BEL or ST
    r"|\x1b[()*+][0-9A-Za-z]"  # charset selection
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

MILESTONES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx))
    for name, rx in (
        ("firmware", r"BdsDxe: (starting|loading)"),
        ("loader", r"systemd-boot|Boot in \d+ s|EFI stub: |systemd-stub|GNU GRUB"),
        ("kernel", r"Linux version \d"),
        ("root-mounted", r"Mounted sysroot\.mount|Reached target initrd-root-fs"),
        ("multi-user", r"Reached target multi-user\.target|Startup finished in"),
        ("check", r"DPS-COMPOSER-CHECK |dps-composer-check: "),
        # the last line of the check's console summary (composer/data/check/dps-composer-check)
        ("summary", r"dps-composer-check: summary ends"),
        ("power-off", r"reboot: Power down"),
        # A getty's prompt, "HOST login: " (agetty(8); "login: " with --nohostname). It has no
        # line end, so the line may still be unfinished, or the kernel's or systemd's next
        # console message may already follow it on the same line.
        ("login", r"(^|\s)login: *$|^(?:[A-Za-z0-9][A-Za-z0-9._-]* )?login: "),
    )
)

# A console that waits for a person: nobody will answer, so the boot has failed now, not at the
# timeout. (name, pattern); each implicates the "no-console-prompt" check.
PROMPT_CHECK = "no-console-prompt"
_PROMPTS = (
    # systemd-firstboot (src/firstboot/firstboot.c): its welcome and each question it asks
    ("firstboot-prompt", r"Please configure (?:your|the) system!|-- Press any key to proceed --"),
    (
        "firstboot-prompt",
        r"Please enter (?:the |a )?(?:new )?(?:system (?:message )?locale|system keymap"
        r"|keymap|timezone|time zone|hostname|root password|root shell)",
    ),
    # sulogin(8) in emergency.service / rescue.service, and its refusal with a locked root
    (
        "maintenance-prompt",
        r"Give root password for maintenance|Press Enter for maintenance"
        r"|Cannot open access to console, the root account is locked",
    ),
    # systemd-cryptsetup's and cryptsetup's questions, GRUB's password and LUKS prompts
    (
        "passphrase-prompt",
        r"Please enter (?:the )?(?:passphrase|recovery key|(?:LUKS2 token |security token )?PIN)"
        r"\b|Enter passphrase for |^Enter username: *$",
    ),
)
PROMPTS = tuple((name, PROMPT_CHECK, rx) for name, rx in _PROMPTS)

# (name, verdict check it implicates, pattern)
_GPT_AUTO_ROOT = r"gpt(?:-|\\x2d)auto(?:-|\\x2d)root"
FATAL_SIGNS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (name, check, re.compile(rx))
    for name, check, rx in (
        (
            "root-timeout",
            "root-discovered",
            rf"Timed out waiting for device.*({_GPT_AUTO_ROOT}|sysroot)",
        ),
        ("root-dependency", "root-discovered", r"Dependency failed for .*(sysroot|Initrd Root)"),
        (
            "root-missing",
            "root-discovered",
            r"VFS: Unable to mount root|gpt-auto-root does not exist",
        ),
        ("emergency", "booted", r"[Ee]mergency mode|emergency shell"),
        ("kernel-panic", "booted", r"Kernel panic"),
        (
            "sb-violation",
            "secure-boot",
            # OVMF 2022.11 on a refused Boot####: 'BdsDxe: failed to load Boot0000 "…" from
            # HD(…)/\\EFI\\…: Access Denied'; systemd-boot: "Error loading …: Security violation".
            r"(?i:security violation)|(BdsDxe|[Ee]rror|[Ff]ail).*(?i:access denied)",
        ),
        ("uefi-shell", "booted", r"UEFI Interactive Shell"),
        ("no-boot-device", "booted", r"No bootable option or device"),
        *PROMPTS,
    )
)

# Evidence that the host let the guest down (not fatal by itself: the verdict decides what it
# explains, composer/judge/blame.py). The guest kernel gives the TPM 750 ms for most commands
# (drivers/char/tpm/tpm2-cmd.c, TPM_MEDIUM for GetCapability and PCR_Extend) and the guest's
# clock under TCG is the host's: QEMU threads that wait that long for a host CPU make the
# emulated TPM "time out".
HOST_SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx))
    for name, rx in (
        ("tpm-timeout", r"tpm tpm\d+: (?:Operation Timed out|Operation Canceled)"),
        ("tpm-transmit", r"tpm tpm\d+: tpm_(?:try_)?transmit: .*error -?\d+"),
    )
)


# "No root partition" long before systemd's device timeout (5 min for /dev/gpt-auto-root): the
# kernel has read the partition tables of the disks (block/partitions/check.c prints
# " vda: vda1 vda2"), and systemd's job for /dev/gpt-auto-root, whose counter is the guest's
# own clock, is still waiting ROOT_SETTLE seconds later. udev creates the link as soon as it
# has probed the partition with the root type on the disk the loader came from
# (systemd's 60-persistent-storage.rules, udev builtin "blkid" with ID_PART_GPT_AUTO_ROOT),
# about a second after the scan even under TCG on a loaded host; that disk is there from the
# start, so a root that has not appeared by then never will.
ROOT_SETTLE = 30.0
_PARTITION_SCAN = re.compile(r"^\s*(?:\[\s*[\d.]+\]\s+)?([a-z][a-z0-9]*): (?:\1p?\d+\s*)+$")
_ROOT_JOB = re.compile(
    r"(?:Job dev-gpt\\x2dauto\\x2droot\.device/start running"
    r"|A start job is running for /dev/gpt-auto-root) \((?:(\d+)min )?(\d+(?:\.\d+)?)s / "
)


class RootWait:
    """Turns the console's "still waiting for /dev/gpt-auto-root" after the partition scan
    into a fatal "root-not-found" sign (see ROOT_SETTLE)."""

    def __init__(self, settle: float = ROOT_SETTLE) -> None:
        self.settle = settle
        self.scanned = ""  # the kernel's partition line, once seen
        self.base: float | None = None  # the job's counter at the first status after the scan
        self.fired = False

    def feed(self, line: str, t: float) -> SerialEvent | None:
        if self.fired:
            return None
        if not self.scanned and _PARTITION_SCAN.match(line):
            self.scanned = line.strip()
            return None
        job = _ROOT_JOB.search(line)
        if job is None or not self.scanned:
            return None
        waited = 60 * int(job.group(1) or 0) + float(job.group(2))
        if self.base is None:
            self.base = waited
        if waited - self.base < self.settle:
            return None
        self.fired = True
        detail = (
            f"no root partition found: /dev/gpt-auto-root did not appear "
            f"{waited - self.base:.0f} s after the kernel read the partitions "
            f"({self.scanned}): systemd found no root partition on the boot disk "
            f"({job.group(0).split(' (')[0]} for {waited:.0f} s)"
        )
        return SerialEvent("fatal", "root-not-found", t, detail, "root-discovered")


def strip_ansi(text: str) -> str:
    """Drop escape sequences and stray control characters; CR, CRLF and cursor jumps → LF."""
    text = _CURSOR_BREAK.sub("\n", text)
    text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def clean_lines(text: str) -> list[str]:
    """Non-empty, right-stripped lines of serial text."""
    return [ln.rstrip() for ln in strip_ansi(text).split("\n") if ln.strip()]


@dataclass(frozen=True)
class SerialEvent:
    kind: str  # "milestone" | "fatal" | "host"
    name: str
    t: float  # seconds since QEMU started when the line arrived
    line: str
    check: str | None = None  # for fatal signs: the verdict check it implicates


class SerialScanner:
    """Feed lines in arrival order; first sighting of each milestone / fatal sign is an event."""

    def __init__(self, keep_lines: int = 40) -> None:
        self.events: list[SerialEvent] = []
        self.tail: deque[str] = deque(maxlen=keep_lines)
        self._seen: set[tuple[str, str]] = set()
        self._root_wait = RootWait()
        self._unlock = UnlockWatch()
        self.recovery = RecoveryKeys()  # keys the console showed (the lines fed are redacted)

    def feed(self, line: str, t: float, *, remember: bool = True) -> list[SerialEvent]:
        """Scan one line; ``remember=False`` for unfinished lines and the check channel."""
        if remember:
            self.tail.append(line)
        new: list[SerialEvent] = []
        for name, rx in MILESTONES:
            if ("milestone", name) not in self._seen and rx.search(line):
                new.append(SerialEvent("milestone", name, t, line.strip()[:300]))
        for name, check, rx in FATAL_SIGNS:
            if ("fatal", name) not in self._seen and rx.search(line):
                new.append(SerialEvent("fatal", name, t, line.strip()[:300], check))
        for name, rx in HOST_SIGNS:
            if ("host", name) not in self._seen and rx.search(line):
                new.append(SerialEvent("host", name, t, line.strip()[:300]))
        if remember and (root_missing := self._root_wait.feed(line, t)) is not None:
            new.append(root_missing)
        if (unlock := self._unlock.feed(line, complete=remember)) is not None:
            new.append(SerialEvent("fatal", "sealed-unlock", t, unlock[1][:600], unlock[0]))
        self._seen.update((e.kind, e.name) for e in new)
        self.events.extend(new)
        return new

    def feed_all(self, lines: Iterable[tuple[float, str]]) -> list[SerialEvent]:
        out: list[SerialEvent] = []
        for t, line in lines:
            out += self.feed(line, t)
        return out


def scan_text(text: str, t: float = 0.0) -> list[SerialEvent]:
    """Events of a whole captured log (all at time ``t``): for offline use and tests."""
    return SerialScanner().feed_all((t, ln) for ln in clean_lines(text))


class SerialTail:
    """Follow a growing serial log file; each complete line gets the time it was first read.

    ``errors``: how undecodable bytes are read ("replace" for text that is printed;
    "surrogateescape" for the check channel, whose record is hashed byte for byte).
    ``max_partial``: an unterminated line longer than this is handed out as it is."""

    def __init__(
        self,
        path: Path,
        start: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        errors: str = "replace",
        max_partial: int = 64 * 1024,
    ):
        self.path = path
        self.start = start
        self.clock = clock
        self.errors = errors
        self.max_partial = max_partial
        self._pos = 0
        self._buf = b""

    def poll(self) -> tuple[list[tuple[float, str]], str]:
        """New complete lines as (t, text), and the cleaned unterminated remainder."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._pos)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        self._pos += len(data)
        self._buf += data
        t = round(self.clock() - self.start, 2)
        cut = self._buf.rfind(b"\n") + 1
        if cut == 0 and len(self._buf) > self.max_partial:
            cut = len(self._buf)
        done, self._buf = self._buf[:cut], self._buf[cut:]
        lines = [(t, ln) for ln in clean_lines(done.decode("utf-8", errors=self.errors))]
        partial = " ".join(clean_lines(self._buf.decode("utf-8", errors="replace")))
        return lines, partial


def milestone_times(events: Iterable[SerialEvent]) -> dict[str, float]:
    return {e.name: e.t for e in events if e.kind == "milestone"}


def last_milestone(events: Iterable[SerialEvent]) -> SerialEvent | None:
    ms = [e for e in events if e.kind == "milestone"]
    return ms[-1] if ms else None  # events are in arrival order
