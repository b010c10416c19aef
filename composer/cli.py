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

from composer import blueprint as bp_mod
from composer import install_cli
from composer.build import StageHook
from composer.build import build as run_build
from composer.cache_cli import cache_app
from composer.cli_support import err, fail, guard, out, say, wrote
from composer.errors import ComposerError
from composer.lifetime import install_signal_handlers
from composer.plan import Plan, make_plan
from composer.uki_cli import uki_app

app = typer.Typer(
    help="Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them."""
    install_signal_handlers()


def _load_plan(path: Path) -> Plan:
    blueprint = bp_mod.load(path)
    return make_plan(blueprint, str(path))


@app.command()
def plan(blueprint: Annotated[Path, typer.Argument(help="Blueprint TOML file")]) -> None:
    """Print the build plan (partitions, UUIDs, packages, boot chain) as JSON."""
    with guard():
        p = _load_plan(blueprint)
    sys.stdout.write(p.to_json() + "\n")


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
        p = _load_plan(blueprint)
        with _progress() as stage:
            result = run_build(p, output, cache_dir=cache_dir, stage=stage, use_cache=not no_cache)
    for warning in result.warnings:
        say(f"warning: {warning}", "yellow")
    for path in result.outputs:
        wrote(path)
    wrote(result.manifest)
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
    """Boot IMAGE(s) in QEMU with OVMF and swtpm and judge them: exit 0 only if all PASS.

    Images without a NAME.manifest.json beside them (built by other tools) get the check
    through a cloud-init NoCloud ISO, or are judged from the serial console when they lack
    cloud-init. An image whose sha256 differs from its manifest's is refused (exit 2).
    """
    from composer.files import atomic_write
    from composer.report import junit_xml, verdicts_json
    from composer.vm.run import BootOptions, boot_many, boot_one, unique_names

    if accel not in ("auto", "kvm", "tcg"):
        fail(ComposerError(f"--accel: {accel!r} is not one of auto, kvm, tcg"))
    if jobs < 1:
        fail(ComposerError(f"--jobs: must be at least 1, not {jobs}"))
    opts = BootOptions(
        accel=accel,
        tpm=tpm,
        keep=keep,
        timeout_for=lambda image: timeout or _manifest_timeout(image, manifest),
        vars_for=lambda image: vars_file or _manifest_varstore(image, manifest),
        manifest=manifest,
    )
    several = len(images) > 1

    def console_for(name: str) -> Callable[[str], None]:
        prefix = f"[{name}] " if several else ""
        return lambda line: say(prefix + line, "dim")

    with guard("interrupted: QEMU and swtpm stopped"):
        if several:
            results = boot_many(images, opts, jobs, console_for)
        else:
            image, name = images[0], unique_names(images)[0]
            keep_dir = keep or image.parent / f"{image.name}.boot"
            results = [boot_one(image, name, opts, keep_dir, console_for(name))]
    for r in results:
        prefix = f"[{r.name}] " if several else ""
        for check in r.verdict.checks:
            mark = ("PASS", "green") if check.passed else ("FAIL", "bold red")
            out.print(Text.assemble(mark, f" {prefix}{check.name}: {check.detail}"))
        where = f" (serial log: {r.keep_dir / 'serial.log'})" if r.keep_dir else ""
        mark = ("PASS", "bold green") if r.verdict.passed else ("FAIL", "bold red")
        out.print(Text.assemble(mark, f" {r.name} [{r.mode}]{where}"))
    with guard():
        if json_out is not None:
            atomic_write(json_out, verdicts_json(results) + "\n")
        if junit is not None:
            atomic_write(junit, junit_xml(results))
    raise typer.Exit(0 if all(r.verdict.passed for r in results) else 1)


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

    from composer.inspect import inspect_image
    from composer.inspect_view import render

    with guard():
        report = inspect_image(image, arch)
    if json_out:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        for line in render(report):
            say(line, console=out)
    raise typer.Exit(0 if report.discovery and report.discovery.ok else 1)


def _manifest_timeout(image: Path, manifest: Path | None) -> float:
    from composer.image_manifest import DEFAULT_TIMEOUT, load

    found = load(image, manifest)
    return found.timeout if found is not None else DEFAULT_TIMEOUT


def _manifest_varstore(image: Path, manifest: Path | None) -> Path | None:
    """The varstore the build shipped beside the image (Secure Boot keys, boot entries)."""
    from composer.image_manifest import load

    found = load(image, manifest)
    return found.varstore() if found is not None else None


keys_app = typer.Typer(help="Secure Boot keys (PK, KEK, db).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(cache_app, name="cache")
app.add_typer(uki_app, name="uki-virt")
app.command("kickstart")(install_cli.kickstart)
app.command("fixup")(install_cli.fixup)


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Argument(help="Directory for the new keys (created)")],
    common_name: Annotated[
        str, typer.Option("--common-name", help="Prefix of the certificates' CN")
    ] = "dps-composer",
) -> None:
    """Generate PK, KEK and db (RSA 2048, self-signed X.509, files mode 0600) in DIRECTORY."""
    from composer.boot.secureboot import generate_keys

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


if __name__ == "__main__":
    main()
