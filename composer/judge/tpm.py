"""A software TPM 2.0 (swtpm) for one VM run, reaped on every exit path."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from composer.core.errors import HostError
from composer.core.lifetime import die_with_parent
from composer.core.tools import run, which
from composer.toolchain.boottools import HOST, BootTools

SUN_PATH_MAX = 107


@dataclass(frozen=True)
class Swtpm:
    socket: Path
    state_dir: Path
    log: Path
    pid: int
    qemu_args: tuple[str, ...]
    proc: subprocess.Popen[bytes]

    def poll(self) -> int | None:
        """swtpm's exit status once it has ended (it should live as long as QEMU)."""
        return self.proc.poll()


def tpm_device(arch: str) -> str:
    """QEMU TPM front end: CRB on x86, the sysbus TIS on Arm virt."""
    return "tpm-crb" if arch in ("x86_64", "i386") else "tpm-tis-device"


def qemu_tpm_args(sock: Path, device: str) -> tuple[str, ...]:
    return (
        "-chardev",
        f"socket,id=chrtpm,path={sock}",
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        f"{device},tpmdev=tpm0",
    )


def _program(tools: BootTools, name: str) -> list[str]:
    return [which(name)] if tools.root is None else tools.command(name)


STATE_FILE = "tpm2-00.permall"  # swtpm's TPM 2.0 state (its --tpmstate dir= backend)


def has_state(state_dir: Path) -> bool:
    """Whether ``state_dir`` holds a TPM that swtpm_setup has set up (kept by a boot before)."""
    return (state_dir / STATE_FILE).is_file()


def setup_state(state_dir: Path, work: Path, tools: BootTools = HOST) -> None:
    """swtpm_setup a fresh TPM 2.0 with a sha256 bank; our own empty config (no CA in /var/lib).
    From a tree, swtpm_setup is told how to start the tree's swtpm (``--tpm``: a command line
    that swtpm_setup splits at blanks, so the tree's path must have none)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config = work / "swtpm_setup.conf"
    config.write_text("")
    engine: list[str] = []
    if tools.root is not None:
        swtpm_cmd = tools.command("swtpm")
        if any(" " in part for part in swtpm_cmd):
            raise HostError(f"the boot tools tree's path has a blank: {tools.root}")
        engine = ["--tpm", " ".join([*swtpm_cmd, "socket"])]
    run(
        [
            *_program(tools, "swtpm_setup"),
            *engine,
            "--tpm2",
            "--tpmstate",
            str(state_dir),
            "--pcr-banks",
            "sha256",
            "--config",
            str(config),
            "--logfile",
            str(work / "swtpm_setup.log"),
        ]
    )


def _listen(path: Path) -> socket.socket:
    if len(str(path)) > SUN_PATH_MAX:
        raise HostError(f"swtpm socket path too long for AF_UNIX ({len(str(path))}): {path}")
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(1)
    except BaseException:
        sock.close()
        raise
    return sock


def _reap(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


@contextmanager
def swtpm(
    work: Path, arch: str = "x86_64", tools: BootTools = HOST, state: Path | None = None
) -> Iterator[Swtpm]:
    """Set up state under ``work`` (or use ``state``, set up only when it holds none yet), run
    ``swtpm socket`` on a pre-bound socket, yield QEMU args.

    Python binds and listens before swtpm starts and hands the fd over (pass_fds), so QEMU can
    connect at once: no polling for the socket to appear.
    """
    work = work.resolve()
    log, sock_path = work / "swtpm.log", work / "swtpm.sock"
    if state is None or not has_state(state):
        state = (state or work / "tpm").resolve()
        setup_state(state, work, tools)
    listener = _listen(sock_path)
    proc: subprocess.Popen[bytes] | None = None
    try:
        fd = listener.fileno()
        argv = [*_program(tools, "swtpm"), "socket", "--tpm2", "--tpmstate", f"dir={state}"]
        argv += ["--ctrl", f"type=unixio,fd={fd}", "--log", f"file={log},level=20"]
        with open(work / "swtpm.stderr", "ab") as err:
            proc = subprocess.Popen(
                argv,
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # Ctrl-C reaches us only; we stop swtpm after QEMU
                preexec_fn=die_with_parent(),  # and SIGKILL of us takes it along
            )
        listener.close()  # swtpm holds its own copy
        args = qemu_tpm_args(sock_path, tpm_device(arch))
        yield Swtpm(sock_path, state, log, proc.pid, args, proc)
    finally:
        listener.close()
        if proc is not None:
            _reap(proc)
        sock_path.unlink(missing_ok=True)


def log_tail(handle: Swtpm, lines: int = 10) -> str:
    try:
        text = handle.log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
