"""`dps-composer boot IMAGE...`: one image or several at once, composer-built or foreign.

Each boot is self-contained (its own work dir, swtpm, varstore copy, QEMU), so several can run
in a thread pool; console lines are prefixed with the image name. A signal (Ctrl-C, SIGTERM,
SIGHUP) stops every boot in progress (each one stops its QEMU and swtpm and keeps its logs)
before it is re-raised. QEMU and swtpm die with the thread that started them
(PR_SET_PDEATHSIG is per thread): a pool's worker threads live until the pool shuts down, after
every boot in it has stopped its VM, so only the composer's death ends them early. A boot that
only the host failed (composer/judge/blame.py) is booted again, up to ``retries`` times; the verdict
lists the attempts.

Exit codes with several images: the most severe result wins, in this order: an image that could
not be booted at all (its error's code: 2 input, 3 environment), an image FAIL (1), an
infrastructure error (4, only the host failed a boot), PASS (0). A FAIL outranks 4 because
a CI job that retries on 4 must never retry a broken image into a pass.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from composer.core.errors import ComposerError
from composer.core.lifetime import Interrupted
from composer.judge.boot import Console, Watch, boot_image
from composer.judge.foreign import judge_serial, make_cidata, plan_foreign
from composer.judge.monitor import StopFlag
from composer.judge.verdict import Check, Verdict, expectations_from_manifest
from composer.manifest import load


@dataclass(frozen=True)
class BootOptions:
    accel: str = "auto"
    tpm: bool = True
    keep: Path | None = None  # with several images: one sub-directory per image
    timeout_for: Callable[[Path], float] = lambda _image: 600.0
    vars_for: Callable[[Path], Path | None] = lambda _image: None
    retries: int = 1  # boots again after an infrastructure error, at most this many times
    firstboot: bool = True  # answer systemd-firstboot's questions with credentials
    manifest: Path | None = None  # judge every image against this one (boot --manifest)
    smp: int | None = None  # vCPUs; None: boot.default_smp, one when boots run side by side
    tpm_state: Path | None = None  # the TPM's state, kept across boots (boot --tpm-state)
    writable: bool = False  # boot the image itself, keeping what the boot changed
    profile: bool = False  # the check also reports the units that took longest (blame)


@dataclass
class BootResult:
    image: Path
    name: str  # unique among the images of one run
    verdict: Verdict
    keep_dir: Path | None
    mode: str  # manifest | cidata | serial | check | error
    started: str = ""  # local time the boot started, ISO 8601 without zone (as JUnit wants)
    error_code: int = 0  # mode "error": the exit code of the error that stopped it

    @property
    def exit_code(self) -> int:
        if self.mode == "error":
            return self.error_code or 1
        return {"pass": 0, "error": 4}.get(self.verdict.outcome, 1)


# most severe first; codes not listed (other errors) rank with the setup errors
PRECEDENCE = (2, 3, 1, 4, 0)


def exit_code(results: Sequence[BootResult]) -> int:
    """The run's exit code: the most severe of the images' (module docstring)."""
    codes = {r.exit_code for r in results}
    other = sorted(codes - set(PRECEDENCE))
    if other:
        return other[0]
    return next((c for c in PRECEDENCE if c in codes), 0)


def has_manifest(image: Path, manifest: Path | None = None) -> bool:
    """Whether ``image`` is judged against a manifest (``manifest``, else NAME.manifest.json
    beside it, which must list the image's sha256: composer/load.py)."""
    return load.load(image, manifest) is not None


def _attempt_summary(verdict: Verdict, number: int) -> dict[str, Any]:
    fault = verdict.host_fault or {}
    return {
        "attempt": number,
        "outcome": verdict.outcome,
        "reason": fault.get("reason", ""),
        "detail": fault.get("detail", ""),
        "total": verdict.timings.get("total", 0.0),
    }


def with_retries(
    boot: Callable[[Callable[[Verdict], Path | None]], Verdict],
    keep: Path | None,
    retries: int,
    console: Console,
) -> Verdict:
    """Boot; after an infrastructure error boot again (at most ``retries`` times). The files of
    an attempt that is booted again are kept in ``attempt-N`` inside the keep directory; the
    last attempt's beside them, with a verdict that lists the earlier ones."""
    earlier: list[dict[str, Any]] = []
    number = 1
    while True:
        last = number > retries

        def finish(v: Verdict, n: int = number, last: bool = last) -> Path | None:
            """Called with the verdict before it is kept: where to keep it."""
            if v.outcome == "error" and not last:
                return keep / f"attempt-{n}" if keep is not None else None
            v.attempts = list(earlier)
            v.notes += [f"attempt {a['attempt']}: {a['reason']}: {a['detail']}" for a in earlier]
            return keep

        verdict = boot(finish)
        if verdict.outcome != "error" or last:
            return verdict
        earlier.append(_attempt_summary(verdict, number))
        number += 1
        console(
            f"infrastructure error ({earlier[-1]['reason']}): {earlier[-1]['detail'][:200]}; "
            f"booting again (attempt {number} of {retries + 1})"
        )


def boot_one(
    image: Path,
    name: str,
    opts: BootOptions,
    keep_dir: Path | None,
    console: Console,
    stop: threading.Event | None = None,
) -> BootResult:
    """Boot and judge one image; a foreign image gets a cidata ISO or a serial-only verdict."""
    boot = functools.partial(
        boot_image,
        image,
        accel=opts.accel,
        timeout=opts.timeout_for(image),
        tpm=opts.tpm,
        vars_file=opts.vars_for(image),
        console=console,
        firstboot=opts.firstboot,
        smp=opts.smp,
        tpm_state=opts.tpm_state,
        writable=opts.writable,
        profile=opts.profile,
    )
    found = load.load(image, opts.manifest)
    if found is not None:
        exp = expectations_from_manifest(found.manifest)
        watch = Watch(stop=stop)
        verdict = with_retries(
            lambda keep: boot(expectations=exp, keep_dir=keep, watch=watch),
            keep_dir,
            opts.retries,
            console,
        )
        verdict.notes.append(found.note)
        return BootResult(image, name, verdict, keep_dir, "manifest")
    plan = plan_foreign(image)
    console(f"foreign image (no manifest beside it): {plan.mode} mode, {plan.reason}")

    def cidata(work: Path) -> list[str]:
        iso = make_cidata(work / "cidata.iso")
        return ["-drive", f"file={iso},format=raw,if=virtio,readonly=on"]

    watch = Watch(
        login_grace=plan.login_grace,
        login_wait=plan.login_wait,
        serial_judge=judge_serial,
        stop=stop,
    )
    verdict = with_retries(
        lambda keep: boot(
            expectations=plan.expectations,
            keep_dir=keep,
            watch=watch,
            attach=cidata if plan.mode == "cidata" else None,
        ),
        keep_dir,
        opts.retries,
        console,
    )
    # serial: judged from the console (no check line came); check: the image had its own check
    mode = "serial" if verdict.guest is None else "cidata" if plan.mode == "cidata" else "check"
    verdict.notes[:0] = [*plan.notes, f"mode: {mode} ({plan.reason})"]
    return BootResult(image, name, verdict, keep_dir, mode)


def unique_names(images: Sequence[Path]) -> list[str]:
    """The file names, or parent/name where two images share a file name."""
    names = [i.name for i in images]
    return [f"{i.parent.name}/{i.name}" if names.count(i.name) > 1 else i.name for i in images]


def keep_dir_for(keep: Path | None, image: Path, name: str, several: bool) -> Path:
    """Where a boot's files are kept: ``--keep`` (a sub-directory per image when there are
    several), else IMAGE-NAME.boot beside the image."""
    if keep is None:
        return image.parent / f"{image.name}.boot"
    return keep / name.replace("/", "_") if several else keep


def _verdict_stamp(keep: Path) -> float | None:
    try:
        return (keep / "verdict.json").stat().st_mtime
    except OSError:
        return None


def _error_result(image: Path, name: str, err: ComposerError, kept: Path | None) -> BootResult:
    verdict = Verdict(False, [Check("booted", False, f"could not boot: {err}", "setup")])
    return BootResult(image, name, verdict, kept, "error", error_code=err.exit_code)


def boot_guarded(
    image: Path,
    name: str,
    opts: BootOptions,
    keep: Path,
    console: Console,
    stop: threading.Event | None = None,
) -> BootResult:
    """boot_one, with an error that stops this image (bad image, no firmware) as its result."""
    started = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    before = _verdict_stamp(keep)
    try:
        result = boot_one(image, name, opts, keep, console, stop)
    except ComposerError as err:
        console(f"error: {err}")
        kept = keep if _verdict_stamp(keep) not in (None, before) else None
        result = _error_result(image, name, err, kept)
    result.started = started
    return result


def boot_many(
    images: Sequence[Path],
    opts: BootOptions,
    jobs: int,
    console_for: Callable[[str], Console],
) -> list[BootResult]:
    """Boot ``images`` with up to ``jobs`` at a time; results in the order of ``images``.
    A setup error (bad image, no firmware) fails that image only. One image boots in this
    thread; several in a pool, and a signal here stops them all before it is re-raised."""
    names = unique_names(images)
    several = len(images) > 1
    if not several:
        keep = keep_dir_for(opts.keep, images[0], names[0], False)
        return [boot_guarded(images[0], names[0], opts, keep, console_for(names[0]))]
    stop = StopFlag()
    if jobs > 1 and opts.smp is None:  # VMs side by side share the host's cores: one vCPU each
        opts = replace(opts, smp=1)

    def one(image: Path, name: str) -> BootResult:
        keep = keep_dir_for(opts.keep, image, name, several)
        return boot_guarded(image, name, opts, keep, console_for(name), stop)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures: list[Future[BootResult]] = [
            pool.submit(one, image, name) for image, name in zip(images, names, strict=True)
        ]
        try:
            return [f.result() for f in futures]
        except (KeyboardInterrupt, Interrupted) as exc:
            # every running boot stops its QEMU and swtpm; queued ones never start
            stop.trip(exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)
            for f in futures:
                f.cancel()
            raise
