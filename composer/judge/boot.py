"""Boot an image in QEMU/OVMF (+ swtpm) and judge it: the `dps-composer boot` command's engine.

Every boot works in its own scratch directory (``dps-composer-boot-*`` under
``DPS_COMPOSER_WORK_DIR``, default /var/tmp; composer/core/workdir.py): the varstore copy, the TPM
state, the serial logs, a cidata ISO. The directory is removed when the boot ends, whatever
ends it; one left by a boot that was killed outright (SIGKILL) holds a lock nobody holds any
more and goes with the next boot or build. QEMU and swtpm die with the composer
(PR_SET_PDEATHSIG) and are stopped and reaped on every other way out.

With a keep directory, the work files and verdict.json are copied there on every way out: a
verdict, a setup error, or an interruption (then the verdict says so).
"""

from __future__ import annotations

import shlex
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from composer.core.errors import ComposerError, HostError
from composer.core.files import copy_into_dir
from composer.core.lifetime import Interrupted
from composer.core.workdir import scratch_dir, work_parent
from composer.image.firmware import Firmware, select_firmware
from composer.image.formats import detect_format
from composer.judge import blame, recovery
from composer.judge.credentials import boot_credentials
from composer.judge.emulator import choose_boot_tools
from composer.judge.firmware_pcrs import for_firmware
from composer.judge.kvm import Accel, resolve_accel
from composer.judge.monitor import (
    POWEROFF_GRACE,
    THROWAWAY_GRACE,
    Console,
    Helper,
    Outcome,
    Watch,
    monitor,
)
from composer.judge.qemu import QemuConfig, QemuProcess, build_command, qemu_command
from composer.judge.serial import SerialEvent, SerialScanner, last_milestone, milestone_times
from composer.judge.tpm import log_tail, swtpm
from composer.judge.verdict import Check, Expectations, Verdict, judge, load_expectations
from composer.spec.arch import Arch, get_arch
from composer.toolchain.boottools import BootTools

__all__ = ["Console", "Watch", "boot_image", "monitor"]

Attach = Callable[[Path], Sequence[str]]  # work dir -> more QEMU arguments for files made there
PLAIN = Watch()  # wait for the image's own check record
# Under TCG with the tree's QEMU 10: two vCPUs (multi-threaded TCG; no oops in 6 boots, a
# boot ~20 % faster than with one: bench/results/). Boots side by side get one each
# (composer/judge/run.py): their vCPU threads would only queue for the same cores.
VCPUS_TCG_TREE = 2


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class _Run:
    """One boot's fixed inputs."""

    work: Path
    cfg: QemuConfig
    tpm: bool
    timeout: float
    console: Console
    watch: Watch
    scanner: SerialScanner
    tpm_state: Path | None = None
    # a throw-away boot: the watch ends with the check's console summary (or THROWAWAY_GRACE
    # after the record), not with the guest's power-off (POWEROFF_GRACE)
    throwaway: bool = False


def _explain(
    out: Outcome, scanner: SerialScanner, qemu_log: str, timeout: float, login_wait: float | None
) -> None:
    """Turn a missing result into evidence judge() can name (as synthetic fatal events)."""
    if out.check is not None or out.reason in ("fatal", "login"):
        return
    if out.reason == "timeout":
        waited = f" (and {out.cpu_wait:.0f} s waiting for a host CPU)" if out.cpu_wait >= 1 else ""
        line = out.overloaded or f"no check result within {timeout:g} s{waited}"
    elif out.reason == "no-login":
        line = f"no login prompt within {login_wait:g} s of multi-user.target"
    elif out.reason == "helper":
        line = out.helper_died
    elif out.record is not None and out.record.problem:
        line = out.record.problem
    elif any(e.name == "power-off" for e in scanner.events):
        line = "guest powered off without a check result (is dps-composer-check.service enabled?)"
    else:
        err = qemu_log.strip().splitlines()[-3:]
        line = f"QEMU exited with status {out.exit_status}: {' | '.join(err) or 'no output'}"
    out.synthetic.append(SerialEvent("fatal", out.reason, out.elapsed, line, "booted"))


def _facts(out: Outcome, scanner: SerialScanner, qemu_log: str) -> blame.HostFacts:
    problem = out.record.problem if out.record is not None else ""
    return blame.HostFacts(
        reason=out.reason,
        exit_status=out.exit_status,
        qemu_log=qemu_log,
        helper_died=out.helper_died,
        record_problem=problem,
        overloaded=out.overloaded,
        powered_off=any(e.name == "power-off" for e in scanner.events),
    )


def _point_cmdline_at(work: Path, kept: Path) -> None:
    """Make the saved QEMU command line name the files where they are kept, not in the work
    directory that is about to go."""
    path = work / "qemu.cmdline"
    if path.is_file():
        argv = shlex.split(path.read_text())
        path.write_text(shlex.join(a.replace(str(work), str(kept)) for a in argv) + "\n")


def _run_vm(run: _Run) -> tuple[Outcome, blame.HostFacts]:
    cfg, work = run.cfg, run.work
    qemu_cmd = qemu_command(cfg)
    with ExitStack() as stack:  # leaves in reverse: QEMU is stopped before swtpm
        helpers: list[Helper] = []
        if run.tpm:
            handle = stack.enter_context(
                swtpm(work, cfg.firmware.arch, cfg.tools, state=run.tpm_state)
            )
            cfg = replace(cfg, tpm_args=handle.qemu_args)
            helpers.append(Helper("swtpm", handle, lambda: log_tail(handle, 3)))
            run.console(f"swtpm: pid {handle.pid}, socket {handle.socket}")
        argv = build_command(qemu_cmd, cfg)
        (work / "qemu.cmdline").write_text(shlex.join(argv) + "\n")
        qemu = stack.enter_context(QemuProcess(argv, work / "qemu.log", env=cfg.tools.qemu_env()))
        run.console(f"qemu: pid {qemu.pid}, serial log {cfg.console_log}")
        w = run.watch
        out = monitor(
            qemu,
            cfg.console_log,
            cfg.check_log,
            run.scanner,
            run.timeout,
            run.console,
            w.login_grace,
            w.stop,
            helpers,
            THROWAWAY_GRACE if run.throwaway else POWEROFF_GRACE,
            run.throwaway,
            w.login_wait,
        )
    qemu_log = (work / "qemu.log").read_text(errors="replace")
    _explain(out, run.scanner, qemu_log, run.timeout, run.watch.login_wait)
    return out, _facts(out, run.scanner, qemu_log)


def _judge(
    run: _Run,
    out: Outcome,
    facts: blame.HostFacts,
    exp: Expectations,
    opened: dict[str, tuple[bool, str]],
) -> Verdict:
    events = [*run.scanner.events, *out.synthetic]
    if out.check is None and run.watch.serial_judge is not None:
        verdict = run.watch.serial_judge(events, exp)
    else:
        names = [name for name, _, _ in exp.sealed]
        extra = recovery.recovery_checks(
            out.check, exp.recovery, names, run.scanner.recovery, opened
        )
        verdict = judge(out.check, events, exp, [Check(*c) for c in extra])
    verdict = blame.assign(verdict, facts, events)
    verdict.timings["total"] = out.elapsed
    verdict.timings["cpu-wait"] = out.cpu_wait
    if out.cpu_wait >= 1:
        share = 100 * out.cpu_wait / max(out.elapsed, 0.01)
        verdict.notes.append(f"host: the VM waited {out.cpu_wait:.0f} s ({share:.0f} %) for a CPU")
    if out.record is not None and not out.record.framed:
        verdict.notes.append("check record without length and sha256 (an older check script)")
    return verdict


def _firmware_for(
    exp: Expectations,
    secure_boot: bool | None,
    console: Console,
    enrolled_keys: bool | None = None,
    tools: BootTools | None = None,
) -> Firmware:
    arch = _guest_arch(exp)
    sb = exp.secure_boot if secure_boot is None else secure_boot
    dirs, root = (tools.firmware_dirs(), tools.root) if tools else (None, None)
    fw = select_firmware(arch, arch.machine, bool(sb), enrolled_keys, dirs, root)
    console(f"firmware: {fw.descriptor.name} ({fw.code.name}, {fw.description})")
    return fw


def _guest_arch(exp: Expectations) -> Arch:
    try:
        return get_arch(exp.architecture)
    except KeyError:
        raise ComposerError(
            f"cannot boot {exp.architecture} images (no QEMU setup for it)"
        ) from None


def _keep(work: Path, keep_dir: Path, verdict: Verdict) -> None:
    """The work files beside the image: never through a link planted there (files.py), and
    the serial log without a recovery key the console showed (composer/judge/recovery.py)."""
    verdict.serial_log = keep_dir / "serial.log"
    extra: dict[str, str | bytes] = {"verdict.json": verdict.to_json() + "\n"}
    console = work / "serial.log"
    if console.is_file():
        extra["serial.log"] = recovery.redact_bytes(console.read_bytes())
    skip = (".sock", "overlay.qcow2", "serial.log")
    copy_into_dir(work, keep_dir, skip=skip, extra=extra)


# where to keep a boot's files; a function is called with the verdict just before it is kept
# (it may complete the verdict) and says where
KeepDir = Path | Callable[[Verdict], Path | None] | None


def _keep_verdict(
    work: Path, keep: KeepDir, verdict: Verdict, say: Console, *, judged: bool = False
) -> None:
    """Keep the work files and the verdict where ``keep`` says. For a boot that ended without a
    verdict of its own (a setup error, an interruption) a failure to keep is only said: it must
    not hide why the boot ended."""
    target = keep(verdict) if callable(keep) else keep
    if target is None:
        return
    _point_cmdline_at(work, target.resolve())
    if judged:
        _keep(work, target, verdict)
        return
    try:
        _keep(work, target, verdict)
    except (OSError, ComposerError) as err:
        say(f"could not keep the boot's files in {target}: {err}")
        return
    say(f"kept: {target}")


def unfinished_verdict(
    reason: Check, events: Sequence[SerialEvent], interrupted: str = ""
) -> Verdict:
    """The verdict of a boot that did not get to be judged (a setup error, an interruption)."""
    return Verdict(False, [reason], milestone_times(events), interrupted=interrupted)


def _interrupted(exc: BaseException, scanner: SerialScanner, started: float) -> Verdict:
    name = exc.args[0] if isinstance(exc, Interrupted) else signal.SIGINT.name
    last = last_milestone(scanner.events)
    where = f"last milestone: {last.name} at {last.t:.1f} s" if last else "no milestone yet"
    detail = f"interrupted by {name} after {time.monotonic() - started:.1f} s; {where}"
    return unfinished_verdict(Check("booted", False, detail), scanner.events, interrupted=name)


@dataclass(frozen=True)
class Settings:
    """How to boot (boot_image's keyword arguments)."""

    accel: str = "auto"
    timeout: float = 600.0
    secure_boot: bool | None = None
    vars_file: Path | None = None
    tpm: bool = True
    writable: bool = False
    memory: str = "2048M"
    smp: int | None = None
    extra_qemu_args: Sequence[str] = ()
    watch: Watch = PLAIN
    firstboot: bool = True
    attach: Attach | None = None
    boot_tools: str = ""  # auto | tree | host; "" = DPS_COMPOSER_BOOT_TOOLS, else auto
    tpm_state: Path | None = None  # kept across boots; None: a fresh TPM in the work directory
    profile: bool = False  # the check also reports systemd-analyze blame (slower)


def default_smp(accel: str, tools: BootTools) -> int:
    """vCPUs when none are asked for. Under TCG: one with the host's QEMU 7.2 (with two,
    its multi-threaded TCG let one vCPU run code the other was patching, x86 static keys,
    and the guest died with "Oops: int3"); with the tree's QEMU 10, VCPUS_TCG_TREE."""
    if accel != "tcg":
        return 2
    return VCPUS_TCG_TREE if tools.root is not None else 1


def _configure(
    work: Path, image: Path, exp: Expectations, st: Settings, say: Console
) -> tuple[QemuConfig, Accel, str]:
    tools, tools_note = choose_boot_tools(st.boot_tools, _guest_arch(exp), say)
    say(tools_note)
    # An image's own varstore replaces the template: pick the descriptor that ships an empty
    # one (the varstore was made from it), not one with somebody else's keys enrolled.
    enrolled = False if st.vars_file else None
    fw = _firmware_for(exp, st.secure_boot, say, enrolled, tools)
    chosen: Accel = resolve_accel(st.accel, fw, tools)
    say(f"accelerator: {chosen.name} ({chosen.reason})")
    smp = st.smp if st.smp is not None else default_smp(chosen.name, tools)
    vars_copy, source = work / "vars.fd", st.vars_file or fw.vars_template
    try:
        shutil.copyfile(source, vars_copy)
    except OSError as err:
        raise HostError(f"cannot copy the varstore {source}: {err.strerror}") from None
    say(f"varstore: private copy of {source}")
    extra = [*st.extra_qemu_args, *(st.attach(work) if st.attach else ())]
    cfg = QemuConfig(
        firmware=fw,
        vars_copy=vars_copy,
        accel_args=chosen.args,
        console_log=work / "serial.log",
        check_log=work / "check.log",
        image=image,
        snapshot=not st.writable,
        memory=st.memory,
        smp=smp,
        credentials=boot_credentials(st.firstboot, st.profile),
        extra=tuple(extra),
        tools=tools,
    )
    return cfg, chosen, tools_note


def _boot_in(
    work: Path, image: Path, exp: Expectations, scanner: SerialScanner, st: Settings, say: Console
) -> Verdict:
    cfg, chosen, tools_note = _configure(work, image, exp, st, say)
    exp, pcr_note = for_firmware(exp, cfg.firmware, cfg.tools)
    # A throw-away boot (overlay disk, fresh TPM, no recovery key to test against the disk the
    # VM leaves) ends once the check record is whole and the console summary after it is out
    # (or THROWAWAY_GRACE has passed): its power-off is neither judged nor kept.
    throwaway = not st.writable and st.tpm_state is None and exp.recovery == "none"
    run = _Run(work, cfg, st.tpm, st.timeout, say, st.watch, scanner, st.tpm_state, throwaway)
    out, facts = _run_vm(run)
    opened = {}
    if scanner.recovery.keys:  # the disk as the VM left it: the image, or the overlay over it
        overlay = None if st.writable else work / "overlay.qcow2"
        disk = recovery.Disk(image, detect_format(image), overlay)
        opened = recovery.try_shown_keys(disk, out.check, scanner.recovery)
    verdict = _judge(run, out, facts, exp, opened)
    verdict.accel, verdict.firmware = chosen.name, str(cfg.firmware.descriptor)
    verdict.serial_tail = list(scanner.tail)
    verdict.notes += [
        f"accelerator: {chosen.reason}",
        tools_note,
        *([pcr_note] if pcr_note else []),
        f"vCPUs: {cfg.smp}",
        f"varstore: {st.vars_file or cfg.firmware.vars_template}",
    ]
    say(f"verdict: {verdict.outcome.upper()} after {out.elapsed:.1f} s")
    return verdict


def boot_image(
    image: Path,
    *,
    expectations: Expectations | None = None,
    console: Console | None = None,
    accel: str = "auto",
    timeout: float = 600.0,
    secure_boot: bool | None = None,
    vars_file: Path | None = None,
    tpm: bool = True,
    keep_dir: KeepDir = None,
    writable: bool = False,
    memory: str = "2048M",
    smp: int | None = None,
    extra_qemu_args: Sequence[str] = (),
    watch: Watch = PLAIN,
    firstboot: bool = True,
    attach: Attach | None = None,
    boot_tools: str = "",
    tpm_state: Path | None = None,
    profile: bool = False,
) -> Verdict:
    """Boot ``image`` under OVMF (+ swtpm), watch the serial ports and judge the result.

    Never modifies the image unless ``writable``. ``timeout`` counts the seconds the VM could
    run (composer/judge/monitor.py). ``firstboot``: pass the credentials that answer
    systemd-firstboot's questions. ``attach(work)`` may make files in the work directory and
    returns the QEMU arguments for them. With ``keep_dir`` the work files (serial.log, check.log,
    qemu.log, qemu.cmdline, swtpm.log, vars.fd, verdict.json) are kept there on every way out
    (``keep_dir`` may also be a function of the verdict that says where, or None).
    ``tpm_state``: the swtpm state directory to use and keep (set up when empty), so that a
    sequence of boots sees one TPM (what a first boot sealed, the next can unseal).
    ``profile``: the check also reports the units that took longest (``guest["blame"]``).
    """
    st = Settings(
        accel,
        timeout,
        secure_boot,
        vars_file,
        tpm,
        writable,
        memory,
        smp,
        tuple(extra_qemu_args),
        watch,
        firstboot,
        attach,
        boot_tools,
        tpm_state,
        profile,
    )
    say = console or _quiet
    image = image.resolve()
    if not image.is_file():
        raise ComposerError(f"{image}: no such image file")
    exp = expectations or load_expectations(image)
    scanner = SerialScanner()
    with scratch_dir("boot", work_parent()) as work:
        started = time.monotonic()
        try:
            verdict = _boot_in(work, image, exp, scanner, st, say)
        except ComposerError as err:
            why = Check("booted", False, f"could not boot: {err}", host_fault="setup")
            _keep_verdict(work, keep_dir, unfinished_verdict(why, scanner.events), say)
            raise
        except (KeyboardInterrupt, Interrupted) as exc:
            _keep_verdict(work, keep_dir, _interrupted(exc, scanner, started), say)
            raise
        _keep_verdict(work, keep_dir, verdict, say, judged=True)
        return verdict
