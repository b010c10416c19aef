"""dps-composer command line: parse, call, render. The work happens in the modules."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from composer.blueprint.model import Blueprint
from composer.build.pipeline import StageHook
from composer.build.pipeline import build as run_build
from composer.cli import install
from composer.cli.cache import cache_app
from composer.cli.common import err, fail, guard, out, say, wrote
from composer.cli.uki_virt import uki_app
from composer.core import paths
from composer.core.errors import ComposerError, KeyedProblems
from composer.core.lifetime import install_signal_handlers
from composer.plan.load import load as load_blueprint
from composer.plan.plan import Plan, make_plan
from composer.rootfs import resolution as resolution_check
from composer.rootfs.resolution import Resolved

app = typer.Typer(
    help="Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts are printed as written: "[image]" is not markup
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them."""
    install_signal_handlers()


def _load_plan(path: Path) -> tuple[Blueprint, Plan]:
    blueprint = load_blueprint(path)
    return blueprint, make_plan(blueprint, str(path))


@contextlib.contextmanager
def _at_lines(blueprint: Blueprint) -> Iterator[None]:
    """Problems found after package resolution, named with the blueprint's file and lines."""
    try:
        yield
    except KeyedProblems as exc:
        raise blueprint.error(list(exc.problems)) from None


@app.command()
def plan(
    blueprint: Annotated[Path, typer.Argument(help="Blueprint TOML file")],
    resolve: Annotated[
        bool,
        typer.Option(
            "--resolve",
            help="Also resolve the package set against the archive, download it into the "
            "package cache and check what it decides (package names and versions, units to "
            "enable, users and groups from packages), as `build` does before its long stages",
        ),
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", envvar="DPS_COMPOSER_CACHE_DIR", help="Cache directory"),
    ] = None,
) -> None:
    """Print the build plan (partitions, UUIDs, packages, boot chain) as JSON.

    Without --resolve the plan is pure (no network): everything the blueprint decides is
    judged against the target's own data; --resolve adds what the archive decides."""
    with guard():
        bp, p = _load_plan(blueprint)
        if resolve:
            with _at_lines(bp):
                found = _resolve(p, cache_dir)
            if found is not None:
                say(f"resolved: {found.packages} packages; every name, version, unit, user and "
                    "group the blueprint asks for is there", "green")  # fmt: skip
            else:
                say("resolution check: not available for dnf targets (dnf checks when it "
                    "installs)", "yellow")  # fmt: skip
    sys.stdout.write(p.to_json() + "\n")


def _resolve(p: Plan, cache_dir: Path | None) -> Resolved | None:
    import tempfile

    cache = cache_dir or paths.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dps-composer-resolve-") as tmp:
        return resolution_check.check(p, None, cache=cache, log=Path(tmp) / "resolve.log")


@app.command()
def build(
    blueprint: Annotated[Path, typer.Argument(help="Blueprint TOML file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory")] = Path("out"),
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", envvar="DPS_COMPOSER_CACHE_DIR", help="Cache directory"),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Rebuild every stage; store nothing (packages are still reused)"
        ),
    ] = False,
) -> None:
    """Build the image: root tree, UKI, ESP, disk, outputs and NAME.manifest.json.

    Stages whose inputs did not change since an earlier build are taken from the stage cache.
    A failed build leaves NAME.build.log in the output directory.
    """
    with guard("interrupted: no image was written"):
        bp, p = _load_plan(blueprint)
        with _progress() as stage, _at_lines(bp):
            result = run_build(p, output, cache_dir=cache_dir, stage=stage, use_cache=not no_cache)
    for warning in result.warnings:
        say(f"warning: {warning}", "yellow")
    for path in result.outputs:
        wrote(path)
    wrote(result.manifest)
    with guard():
        for user, path in _write_generated_passwords(p, output, cache_dir or paths.cache_dir()):
            wrote(path)
            say(f"log in as {user}: the password is in {path} (mode 0600)", console=out)
    total = sum(result.timings.values())
    say(
        f"built in {total:.1f} s: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()),
        console=out,
    )
    cached = [stage for stage, state in result.cache.items() if state == "hit"]
    if cached:
        say("from the stage cache: " + ", ".join(cached), console=out)


@app.command()
def boot(
    images: Annotated[
        list[Path], typer.Argument(help="Disk image(s): raw, qcow2, vmdk, vhdx, vhd")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the verdict(s) as JSON to this file")
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write a JUnit XML report (one testcase per check)"),
    ] = None,
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Boot up to N images at once")] = 1,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before giving up (default: manifest, else 600)")
    ] = None,
    accel: Annotated[str, typer.Option(help="auto, kvm or tcg")] = "auto",
    keep: Annotated[
        Path | None,
        typer.Option(
            help="Keep serial logs and work files here, one sub-directory per image when "
            "there are several (default: IMAGE-NAME.boot/ beside each image)"
        ),
    ] = None,
    tpm: Annotated[bool, typer.Option("--tpm/--no-tpm", help="Attach an swtpm TPM 2.0")] = True,
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
) -> None:
    """Boot IMAGE(s) in QEMU with OVMF and swtpm and judge them: exit 0 only if all PASS,
    1 if one FAILs, 4 if only the host failed a boot (infrastructure error).

    Images without a NAME.manifest.json beside them (built by other tools) get the check
    through a cloud-init NoCloud ISO, or are judged from the serial console when they lack
    cloud-init. An image whose sha256 differs from its manifest's is refused (exit 2).
    """
    from composer.core.files import atomic_write
    from composer.judge.report import junit_xml, verdicts_json
    from composer.judge.run import BootOptions, boot_many, exit_code

    if accel not in ("auto", "kvm", "tcg"):
        fail(ComposerError(f"--accel: {accel!r} is not one of auto, kvm, tcg"))
    if jobs < 1:
        fail(ComposerError(f"--jobs: must be at least 1, not {jobs}"))
    if retries < 0:
        fail(ComposerError(f"--retries: must be 0 or more, not {retries}"))
    with guard():  # before minutes of booting: reports that could not be written, bad --vars
        keeps = [keep] if keep else [i.parent / f"{i.name}.boot" for i in images]
        _check_boot_inputs(json_out, junit, vars_file, keeps)
    opts = BootOptions(
        accel=accel,
        tpm=tpm,
        keep=keep,
        timeout_for=lambda image: timeout or _manifest_timeout(image, manifest),
        vars_for=lambda image: vars_file or _manifest_varstore(image, manifest),
        retries=retries,
        manifest=manifest,
    )
    several = len(images) > 1

    def console_for(name: str) -> Callable[[str], None]:
        prefix = f"[{name}] " if several else ""
        return lambda line: say(prefix + line, "dim")

    with guard("interrupted: QEMU and swtpm stopped"):
        results = boot_many(images, opts, jobs, console_for)
    for r in results:
        prefix = f"[{r.name}] " if several else ""
        for check in r.verdict.checks:
            mark = _check_mark(check.passed, check.host_fault)
            out.print(Text.assemble(mark, f" {prefix}{check.name}: {check.detail}"))
        where = f" (serial log: {r.keep_dir / 'serial.log'})" if r.keep_dir else ""
        mark = _OUTCOME_MARK.get(r.verdict.outcome, ("FAIL", "bold red"))
        out.print(Text.assemble(mark, f" {r.name} [{r.mode}]{where}"))
    with guard():
        if json_out is not None:
            atomic_write(json_out, verdicts_json(results) + "\n")
        if junit is not None:
            atomic_write(junit, junit_xml(results))
    raise typer.Exit(exit_code(results))


_OUTCOME_MARK = {"pass": ("PASS", "bold green"), "error": ("ERROR", "bold yellow")}


def _check_mark(passed: bool, host_fault: str) -> tuple[str, str]:
    """PASS, FAIL (the image), or ERROR (the host failed the check: infrastructure)."""
    if passed:
        return ("PASS", "green")
    return ("ERROR", "bold yellow") if host_fault else ("FAIL", "bold red")


@app.command()
def inspect(
    image: Annotated[Path, typer.Argument(help="Disk image: raw, qcow2, vmdk, vhdx, vhd")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    arch: Annotated[
        str | None, typer.Option(help="Architecture to judge for (default: the image's)")
    ] = None,
) -> None:
    """Report what IMAGE is without booting it: GPT, DPS types, flags, file systems, UKIs,
    signatures, os-release, and what would keep it from auto-discovering its root.
    Exits 0 when the root would be discovered, 1 when not."""
    import json

    from composer.inspect.image import inspect_image
    from composer.inspect.view import render

    with guard():
        report = inspect_image(image, arch)
    if json_out:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        for line in render(report):
            say(line, console=out)
    raise typer.Exit(0 if report.discovery and report.discovery.ok else 1)


def _write_generated_passwords(p: Plan, output: Path, cache: Path) -> list[tuple[str, Path]]:
    """OUTPUT/NAME.USER.password of every user with generate_password (cache_secret.py)."""
    from composer.core.secret import cache_secret, write_password_file

    users = [u.name for u in p.customizations.user if u.generate_password]
    if not users:
        return []
    secret = cache_secret(cache)
    return [(user, write_password_file(output, secret, p.name, user)) for user in users]


def _check_boot_inputs(
    json_out: Path | None, junit: Path | None, vars_file: Path | None, keeps: list[Path]
) -> None:
    from composer.core.files import check_dir_target, check_target
    from composer.image.formats import ImageFileError, detect_format

    for target in (json_out, junit):
        if target is not None:
            check_target(target)
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


keys_app = typer.Typer(
    help="Secure Boot keys (PK, KEK, db).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(keys_app, name="keys")
app.add_typer(cache_app, name="cache")
app.add_typer(uki_app, name="uki-virt")
app.command("kickstart")(install.kickstart)
app.command("fixup")(install.fixup)


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Argument(help="Directory for the new keys (created)")],
    common_name: Annotated[
        str, typer.Option("--common-name", help="Prefix of the certificates' CN")
    ] = "dps-composer",
) -> None:
    """Generate PK, KEK and db (RSA 2048, self-signed X.509, files mode 0600) in DIRECTORY."""
    from composer.toolchain.secureboot import generate_keys

    with guard():
        keys = generate_keys(directory, common_name)
    for path in keys.files():
        wrote(path)
    say(f"signature owner GUID: {keys.owner}", console=out)


@contextlib.contextmanager
def _progress() -> Iterator[StageHook]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        task = progress.add_task(name, total=1)
        try:
            yield
        finally:
            progress.update(task, completed=1)
            progress.stop_task(task)

    with progress:
        yield stage


def main() -> None:
    app()
