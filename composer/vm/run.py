"""`dps-composer boot IMAGE...`: one image or several at once, composer-built or foreign.

Each boot is self-contained (its own work dir, swtpm, varstore copy, QEMU), so several can run
in a thread pool; console lines are prefixed with the image name. Ctrl-C stops every boot in
progress (each one stops its QEMU and swtpm) before it is re-raised.
"""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from composer import image_manifest
from composer.errors import ComposerError
from composer.vm.boot import Console, Watch, boot_image
from composer.vm.foreign import judge_serial, make_cidata, plan_foreign
from composer.vm.validate import Check, Verdict, expectations_from_manifest


@dataclass(frozen=True)
class BootOptions:
    accel: str = "auto"
    tpm: bool = True
    keep: Path | None = None  # with several images: one sub-directory per image
    timeout_for: Callable[[Path], float] = lambda _image: 600.0
    vars_for: Callable[[Path], Path | None] = lambda _image: None
    manifest: Path | None = None  # judge every image against this one (boot --manifest)


@dataclass
class BootResult:
    image: Path
    name: str  # unique among the images of one run
    verdict: Verdict
    keep_dir: Path | None
    mode: str  # manifest | cidata | serial | check | error
    started: str = ""  # local time the boot started, ISO 8601 without zone (as JUnit wants)


def has_manifest(image: Path, manifest: Path | None = None) -> bool:
    """Whether ``image`` is judged against a manifest (``manifest``, else NAME.manifest.json
    beside it, which must list the image's sha256: composer/image_manifest.py)."""
    return image_manifest.load(image, manifest) is not None


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
        keep_dir=keep_dir,
        console=console,
    )
    found = image_manifest.load(image, opts.manifest)
    if found is not None:
        expectations = expectations_from_manifest(found.data, found.path)
        verdict = boot(expectations=expectations, watch=Watch(stop=stop))
        verdict.notes.append(found.note)
        return BootResult(image, name, verdict, keep_dir, "manifest")
    plan = plan_foreign(image)
    console(f"foreign image (no manifest beside it): {plan.mode} mode, {plan.reason}")
    with tempfile.TemporaryDirectory(prefix="dps-composer-cidata-") as tmp:
        extra: list[str] = []
        if plan.mode == "cidata":
            iso = make_cidata(Path(tmp) / "cidata.iso")
            extra = ["-drive", f"file={iso},format=raw,if=virtio,readonly=on"]
        verdict = boot(
            expectations=plan.expectations,
            extra_qemu_args=extra,
            watch=Watch(login_grace=plan.login_grace, serial_judge=judge_serial, stop=stop),
        )
    # serial: judged from the console (no check line came); check: the image had its own check
    mode = "serial" if verdict.guest is None else "cidata" if plan.mode == "cidata" else "check"
    verdict.notes[:0] = [*plan.notes, f"mode: {mode} ({plan.reason})"]
    return BootResult(image, name, verdict, keep_dir, mode)


def unique_names(images: Sequence[Path]) -> list[str]:
    """The file names, or parent/name where two images share a file name."""
    names = [i.name for i in images]
    return [f"{i.parent.name}/{i.name}" if names.count(i.name) > 1 else i.name for i in images]


def _keep_dir(opts: BootOptions, image: Path, name: str, several: bool) -> Path:
    if opts.keep is None:
        return image.parent / f"{image.name}.boot"
    return opts.keep / name.replace("/", "_") if several else opts.keep


def _error_result(image: Path, name: str, err: ComposerError) -> BootResult:
    verdict = Verdict(False, [Check("booted", False, f"could not boot: {err}")])
    return BootResult(image, name, verdict, None, "error")


def boot_many(
    images: Sequence[Path],
    opts: BootOptions,
    jobs: int,
    console_for: Callable[[str], Console],
) -> list[BootResult]:
    """Boot ``images`` with up to ``jobs`` at a time; results in the order of ``images``.
    A setup error (bad image, no firmware) fails that image only."""
    names = unique_names(images)
    several = len(images) > 1
    stop = threading.Event()

    def one(image: Path, name: str) -> BootResult:
        started = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
        try:
            keep = _keep_dir(opts, image, name, several)
            result = boot_one(image, name, opts, keep, console_for(name), stop)
        except ComposerError as err:
            console_for(name)(f"error: {err}")
            result = _error_result(image, name, err)
        result.started = started
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures: list[Future[BootResult]] = [
            pool.submit(one, image, name) for image, name in zip(images, names, strict=True)
        ]
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            stop.set()  # every running boot stops its QEMU and swtpm
            for f in futures:
                f.cancel()
            raise
