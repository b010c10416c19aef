"""`dps-composer boot IMAGE...`: boot and judge images."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.text import Text

from composer.cli.common import (
    JsonFile,
    JsonStyle,
    check_report_target,
    guard,
    human,
    json_text,
    print_json,
    say,
)
from composer.cli.progress import (
    Heartbeat,
    ProgressMode,
    ProgressOption,
    QuietOption,
    VerboseOption,
    resolve_mode,
    verbose_log,
)
from composer.core import paths
from composer.core.errors import ComposerError, UsageError
from composer.core.files import atomic_write, check_dir_target
from composer.image.formats import ImageFileError, detect_format

# The judge's modules are imported when a boot runs: `--help`, completion and the other
# commands start without them (composer/cli/commands.py).
if TYPE_CHECKING:
    from composer.judge.report_html import ImageReport
    from composer.judge.run import BootResult

MAX_VCPUS = 64


def boot(
    images: Annotated[
        list[Path], typer.Argument(help="Disk image(s): raw, qcow2, vmdk, vhdx, vhd")
    ],
    json_style: JsonStyle = None,
    json_file: JsonFile = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write a JUnit XML report to FILE (one testcase per check)"),
    ] = None,
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Boot up to N images at once")] = 1,
    vcpus: Annotated[
        int | None,
        typer.Option(
            "--vcpus",
            envvar=paths.VCPUS_ENV,
            min=1,
            max=MAX_VCPUS,
            help="vCPUs per VM (default: 2; under TCG with the host's QEMU 7.2, 1; with "
            "--jobs above 1, 1 each). One where boots run side by side on few cores: "
            "multi-threaded TCG's vCPU threads then only queue for the same cores",
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before giving up (default: manifest, else 600)")
    ] = None,
    accel: Annotated[
        Literal["auto", "kvm", "tcg"],
        typer.Option(
            help="auto: KVM when a probe boot shows it works, else TCG ($DPS_COMPOSER_ACCEL "
            "sets what auto means)"
        ),
    ] = "auto",
    keep: Annotated[
        Path | None,
        typer.Option(
            help="Keep serial logs and work files here, one sub-directory per image when "
            "there are several (default: IMAGE-NAME.boot/ beside each image)"
        ),
    ] = None,
    tpm: Annotated[bool, typer.Option("--tpm/--no-tpm", help="Attach an swtpm TPM 2.0")] = True,
    tpm_state: Annotated[
        Path | None,
        typer.Option(
            "--tpm-state",
            help="Keep the TPM's state in DIR across boots (set up when DIR is new or empty): "
            "with --writable, a sequence of boots of one image sees one TPM, so what the "
            "first boot sealed the next can unseal",
        ),
    ] = None,
    writable: Annotated[
        bool,
        typer.Option(
            "--writable",
            help="Boot the image file itself, not a throw-away overlay: what the boot changes "
            "(first-boot partitions, sealed volumes) stays; no retries; judge the changed "
            "image with --manifest",
        ),
    ] = False,
    vars_file: Annotated[
        Path | None,
        typer.Option(
            "--vars", help="OVMF varstore to boot with (default: the manifest's NAME.vars.fd)"
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(help="Boot again after an infrastructure error, at most N times"),
    ] = 1,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="Judge the image(s) against this manifest, also when the image was changed "
            "after the build (default: NAME.manifest.json beside NAME.qcow2, whose sha256 must "
            "match)",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write a self-contained HTML report into DIR (index.html; with several "
            "images one page each and an index)",
        ),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also report the units that took longest to start, those the boot waited "
            "for and those that used the most CPU, and the guest CPUs' busy and idle time "
            "(systemd-analyze blame and critical-chain in the guest; blame asks systemd "
            "about every unit, about 8 s more per boot under TCG)",
        ),
    ] = False,
    progress: ProgressOption = ProgressMode.auto,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Boot IMAGE(s) in QEMU with OVMF and swtpm and judge them: exit 0 only if all PASS,
    1 if one FAILs, 2 for bad input, 3 for a missing or failing tool or firmware, 4 if only
    the host failed a boot (infrastructure error).

    Images without a NAME.manifest.json beside them (built by other tools) get the check
    through a cloud-init NoCloud ISO, or are judged from the serial console when they lack
    cloud-init. An image whose sha256 differs from its manifest's is refused (exit 2).
    """
    from composer.judge.report import junit_xml, verdicts_document
    from composer.judge.report_html import write_reports
    from composer.judge.run import BootOptions, boot_many, exit_code

    with guard():  # before minutes of booting: bad options, reports that could not be
        # written, a bad --vars
        if jobs < 1:
            raise UsageError(f"--jobs: must be at least 1, not {jobs}")
        if retries < 0:
            raise UsageError(f"--retries: must be 0 or more, not {retries}")
        _check_sequence(images, tpm, tpm_state, writable)
        keeps = [keep] if keep else [i.parent / f"{i.name}.boot" for i in images]
        _check_boot_inputs(json_file, junit, vars_file, keeps)
        if report is not None:
            check_dir_target(report)
    opts = BootOptions(
        accel=accel,
        tpm=tpm,
        keep=keep,
        timeout_for=lambda image: timeout or _manifest_timeout(image, manifest),
        vars_for=lambda image: vars_file or _manifest_varstore(image, manifest),
        retries=0 if writable else retries,  # a retry would boot what the failed boot left
        manifest=manifest,
        tpm_state=tpm_state,
        writable=writable,
        smp=vcpus,
        profile=profile,
    )
    several = len(images) > 1

    beats = contextlib.ExitStack()

    def console_for(name: str) -> Callable[[str], None]:
        prefix = f"[{name}] " if several else ""
        if resolve_mode(progress, quiet) is ProgressMode.none:
            return lambda line: None
        beat = beats.enter_context(Heartbeat(lambda line: say(line, "dim"), prefix=prefix))
        return beat.line

    with guard("interrupted: QEMU and swtpm stopped"), beats, verbose_log(verbose):
        results = boot_many(images, opts, jobs, console_for)
    console = human(json_style)
    for r in results:
        prefix = f"[{r.name}] " if several else ""
        for check in r.verdict.checks:
            mark = _check_mark(check.passed, check.host_fault)
            console.print(Text.assemble(mark, f" {prefix}{check.name}: {check.detail}"))
        where = f" (serial log: {r.keep_dir / 'serial.log'})" if r.keep_dir else ""
        mark = _OUTCOME_MARK.get(r.verdict.outcome, ("FAIL", "bold red"))
        console.print(Text.assemble(mark, f" {r.name} [{r.mode}]{where}"))
    if json_style:
        print_json(verdicts_document(results), json_style)
    with guard():
        if json_file is not None:
            atomic_write(json_file, json_text(verdicts_document(results)))
        if junit is not None:
            atomic_write(junit, junit_xml(results))
        if report is not None:
            pages = write_reports(report, [_image_report(r, manifest) for r in results])
            say(f"report: {pages[0]}", console=console)
    raise typer.Exit(exit_code(results))


def _image_report(r: BootResult, manifest: Path | None) -> ImageReport:
    """A page's data: the verdict, the manifest the image was judged against (if any), the
    kept serial log."""
    from composer.judge.report import result_dict
    from composer.judge.report_html import ImageReport
    from composer.manifest.load import load

    try:
        found = load(r.image, manifest)
    except ComposerError:
        found = None
    serial = r.keep_dir / "serial.log" if r.keep_dir else None
    text = serial.read_text(errors="replace") if serial and serial.is_file() else ""
    return ImageReport(r.name, result_dict(r), found.manifest if found else None, text)


_OUTCOME_MARK = {"pass": ("PASS", "bold green"), "error": ("ERROR", "bold yellow")}


def _check_mark(passed: bool, host_fault: str) -> tuple[str, str]:
    """PASS, FAIL (the image), or ERROR (the host failed the check: infrastructure)."""
    if passed:
        return ("PASS", "green")
    return ("ERROR", "bold yellow") if host_fault else ("FAIL", "bold red")


def _check_sequence(images: list[Path], tpm: bool, tpm_state: Path | None, writable: bool) -> None:
    """--tpm-state and --writable keep state across boots: of one image, with a TPM."""
    if tpm_state is not None:
        if not tpm:
            raise UsageError("--tpm-state: keeps a TPM's state; it cannot go with --no-tpm")
        if tpm_state.exists() and not tpm_state.is_dir():
            raise UsageError(f"--tpm-state {tpm_state}: exists and is not a directory")
    if (tpm_state is not None or writable) and len(images) > 1:
        option = "--tpm-state" if tpm_state is not None else "--writable"
        raise UsageError(f"{option}: boots one image at a time (got {len(images)})")


def _check_boot_inputs(
    json_file: Path | None, junit: Path | None, vars_file: Path | None, keeps: list[Path]
) -> None:
    for target, option in ((json_file, "--json-file"), (junit, "--junit")):
        if target is not None:
            check_report_target(target, option)
    for keep_dir in keeps:
        check_dir_target(keep_dir)
    if vars_file is not None:
        fmt = detect_format(vars_file)
        if fmt != "raw":
            raise ImageFileError(
                f"--vars {vars_file}: a {fmt} image; a varstore is a raw file (as OVMF_VARS*.fd)"
            )


def _manifest_timeout(image: Path, manifest: Path | None) -> float:
    from composer.manifest.load import DEFAULT_TIMEOUT, load

    found = load(image, manifest)
    return found.timeout if found is not None else DEFAULT_TIMEOUT


def _manifest_varstore(image: Path, manifest: Path | None) -> Path | None:
    """The varstore the build shipped beside the image (Secure Boot keys, boot entries)."""
    from composer.manifest.load import load

    found = load(image, manifest)
    return found.varstore() if found is not None else None
