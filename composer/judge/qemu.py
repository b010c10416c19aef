"""The QEMU command line for a boot test, and QEMU as a child process that always dies with us."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from composer.core import tools
from composer.core.lifetime import die_with_parent
from composer.image.firmware import Firmware, machine_matches
from composer.image.formats import ImageFileError, blockdev, detect_format, virtual_size
from composer.judge.credentials import boot_credentials, smbios_args
from composer.toolchain.boottools import HOST, BootTools

CHECK_PORT_NAME = "dps-composer.check"  # virtio-serial port name where there is no 2nd UART


# q35 without the devices a boot test never uses and the guest would probe and load modules for
# on its one emulated CPU while the check runs: the SMBus controller (i2c_i801), the PS/2
# controller (i8042, psmouse), VMware's I/O port and the AHCI controller (the disk is virtio)
Q35_LEAN = "smbus=off,i8042=off,vmport=off,sata=off"


def machine_args(firmware: Firmware) -> list[str]:
    """The machine, its flash from the block nodes "pflash0" (code) and "pflash1" (vars)."""
    machine = f"{firmware.machine},pflash0=pflash0,pflash1=pflash1"
    if machine_matches(firmware.machine, ["pc-q35-*"]):
        machine += f",{Q35_LEAN}"
    if firmware.requires_smm:
        return [
            "-machine",
            f"{machine},smm=on",
            "-global",
            "driver=cfi.pflash01,property=secure,value=on",
        ]
    return ["-machine", machine]


def _blockdev(opts: dict[str, Any]) -> list[str]:
    return ["-blockdev", json.dumps(opts)]


def firmware_args(firmware: Firmware, vars_copy: Path) -> list[str]:
    """Machine type plus split flash: read-only code, a private varstore copy. The varstore
    must be in the format the firmware's descriptor names (raw for Debian's OVMF) and name
    no other file; both are given as JSON block nodes, so no path is ever re-parsed."""
    vars_fmt = detect_format(vars_copy) if vars_copy.exists() else firmware.vars_format
    if vars_fmt != firmware.vars_format:
        raise ImageFileError(
            f"the varstore is {vars_fmt}, but {firmware.descriptor.name} takes a "
            f"{firmware.vars_format} varstore: give a {firmware.vars_format} file"
        )
    code = blockdev(firmware.code, firmware.code_format, node="pflash0", read_only=True)
    nvram = blockdev(vars_copy, vars_fmt, node="pflash1")
    return [*machine_args(firmware), *_blockdev(code), *_blockdev(nvram)]


@dataclass(frozen=True)
class QemuConfig:
    firmware: Firmware
    vars_copy: Path
    accel_args: Sequence[str]
    console_log: Path
    check_log: Path
    image: Path | None = None
    snapshot: bool = True  # never modify the image unless asked
    tpm_args: Sequence[str] = ()
    memory: str = "2048M"
    smp: int = 2
    credentials: Mapping[str, str] = field(default_factory=boot_credentials)
    extra: Sequence[str] = ()
    tools: BootTools = HOST  # where QEMU (and its data files) come from


def _disk_args(image: Path, snapshot: bool, work: Path) -> list[str]:
    """The disk as JSON block nodes. Read-only boots write to a throw-away qcow2 overlay in
    ``work`` that records no backing file: its backing is the image's node, by name."""
    fmt = detect_format(image)
    base = blockdev(image, fmt, node="disk0" if not snapshot else "disk0-base", read_only=snapshot)
    args = _blockdev(base)
    if snapshot:  # writes go to the overlay; no need to flush them
        overlay = work / "overlay.qcow2"
        overlay.unlink(missing_ok=True)
        size = virtual_size(image, fmt)
        tools.run(["qemu-img", "create", "-q", "-f", "qcow2", overlay, str(size)])
        top = blockdev(overlay, "qcow2", node="disk0")
        top.update({"backing": "disk0-base", "cache": {"no-flush": True}})
        args += _blockdev(top)
    return [*args, "-device", "virtio-blk-pci,drive=disk0,bootindex=1"]


def _serial_args(cfg: QemuConfig) -> list[str]:
    """ttyS0 → console log; check channel → ttyS1 (x86) or a named virtio-serial port."""
    args = ["-chardev", f"file,id=console,path={cfg.console_log}", "-serial", "chardev:console"]
    args += ["-chardev", f"file,id=check,path={cfg.check_log}"]
    if cfg.firmware.arch in ("x86_64", "i386"):
        args += ["-serial", "chardev:check"]
    else:
        port = f"virtserialport,chardev=check,name={CHECK_PORT_NAME}"
        args += ["-device", "virtio-serial-pci", "-device", port]
    return args


def qemu_command(cfg: QemuConfig) -> list[str]:
    """How QEMU for the firmware's architecture is started (host or boot tools tree)."""
    program = f"qemu-system-{cfg.firmware.arch}"
    if cfg.tools.root is None:
        return [tools.which(program)]
    return [*cfg.tools.command(program), *cfg.tools.qemu_data_args()]


def build_command(qemu: str | Sequence[str], cfg: QemuConfig) -> list[str]:
    start = [qemu] if isinstance(qemu, str) else list(qemu)
    argv = [*start, *firmware_args(cfg.firmware, cfg.vars_copy), *cfg.accel_args]
    argv += ["-m", cfg.memory, "-smp", str(cfg.smp)]
    argv += ["-nodefaults", "-display", "none", "-no-reboot", "-no-user-config"]
    argv += _serial_args(cfg)
    argv += smbios_args(cfg.credentials)
    argv += ["-device", "virtio-rng-pci"]
    if cfg.image is not None:
        argv += _disk_args(cfg.image, cfg.snapshot, cfg.vars_copy.parent)
    argv += [*cfg.tpm_args, *cfg.extra]
    return argv


class QemuProcess:
    """QEMU in its own process group; leaving the context kills it (TERM, then KILL) and reaps.

    Its own session keeps a terminal's Ctrl-C away from it (we stop it, in order); since nothing
    else then ties it to us, it is also asked to die with the thread that started it
    (PR_SET_PDEATHSIG): a composer killed with SIGKILL takes its QEMU with it."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        term_grace: float = 5.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = {**os.environ, **env} if env else None
        self.log = log
        self.term_grace = term_grace
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    def __enter__(self) -> QemuProcess:
        self._log_fh = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches us, not QEMU: we stop it in order
                preexec_fn=die_with_parent(),
            )
        except BaseException:
            self._log_fh.close()
            raise
        return self

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL after the grace period, always reap."""
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGTERM, self.term_grace), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            if self.wait(grace) is not None:
                break
        self.proc.poll()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            if self._log_fh:
                self._log_fh.close()
