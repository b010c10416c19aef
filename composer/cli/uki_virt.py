"""`dps-composer uki-virt …`: the generic VM UKI as an installable package."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from composer.cli.common import CacheDir, JsonStyle, guard, human, print_json, say, wrote
from composer.core import paths
from composer.core.errors import UsageError
from composer.core.log import log_file
from composer.spec.arch import ARCHES, get_arch
from composer.target.distros import DISTROS, get_distro
from composer.uki_virt import DEFAULT_CMDLINE

uki_app = typer.Typer(
    help="uki-virt: a generic VM UKI built from the distribution's kernel, as .deb/.rpm.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@uki_app.command("build")
def build(
    distro: Annotated[str, typer.Option("--distro", help="Distribution, e.g. debian-13")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Repository directory")],
    kernel: Annotated[
        str | None,
        typer.Option("--kernel", help="Kernel release (uname -r); default: the newest"),
    ] = None,
    architecture: Annotated[str, typer.Option("--arch", help="Architecture")] = "x86_64",
    cmdline: Annotated[str, typer.Option("--cmdline", help="Kernel command line")] = (
        DEFAULT_CMDLINE
    ),
    sign: Annotated[bool, typer.Option("--sign", help="Sign the UKI with the db key")] = False,
    keys: Annotated[
        Path | None, typer.Option("--keys", help="Secure Boot key directory (with --sign)")
    ] = None,
    pcr_keys: Annotated[
        Path | None,
        typer.Option(
            "--pcr-keys",
            help="Sign the UKI's expected PCR 11 values with the PCR policy key pair in DIR "
            "(.pcrsig, .pcrpkey; make one with keys generate --pcr-only)",
        ),
    ] = None,
    cache_dir: CacheDir = None,
    json_style: JsonStyle = None,
) -> None:
    """Build uki-virt-<kver>, uki-virt and kernel-uki-virt into the repository OUTPUT
    (apt flat repository + RPM repodata; earlier kernels there are kept)."""
    from composer.build.bootchain.chain import default_keys_dir  # when a build runs
    from composer.uki_virt.virt import UkiVirtConfig, ensure_uki_virt, publish

    with guard():
        if distro not in DISTROS or get_distro(distro).family != "apt":
            apt = [d for d, v in DISTROS.items() if v.family == "apt"]
            raise UsageError(
                f"--distro {distro!r}: uki-virt is built from a Debian kernel package; "
                f"choose one of {', '.join(apt)} (Fedora ships kernel-uki-virt itself)"
            )
        if architecture not in ARCHES:
            raise UsageError(f"--arch {architecture!r}: choose one of {', '.join(ARCHES)}")
        if keys is not None and not sign:
            raise UsageError("--keys needs --sign")
        cache = cache_dir or paths.cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        arch = get_arch(architecture)
        key_dir = str(keys or default_keys_dir(cache)) if sign else None
        config = UkiVirtConfig.for_arch(arch, cmdline, key_dir, str(pcr_keys) if pcr_keys else None)
        config.pcr_signing()  # a bad key directory fails now, not after the kernel download
        output.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with log_file(output / "uki-virt.build.log"):
            result = ensure_uki_virt(
                get_distro(distro), arch, config, cache=cache, kernel_release=kernel
            )
            files = publish(result, output)
    console = human(json_style)
    for path in files:
        wrote(path, console=console)
    how = "cached build reused" if result.cached else "built"
    elapsed = time.monotonic() - start
    say(
        f"{how} in {elapsed:.1f} s: kernel {result.kernel.kver} "
        f"({result.kernel.version}), UKI {result.uki_size / 2**20:.1f} MiB, "
        f"{result.initrd_modules} modules in the initrd",
        console=console,
    )
    if json_style:
        summary = {
            "repository": str(output),
            "files": [str(p) for p in files],
            "cached": result.cached,
            "seconds": round(elapsed, 3),
            "kernel": {"release": result.kernel.kver, "version": result.kernel.version},
            "uki_size": result.uki_size,
            "initrd_modules": result.initrd_modules,
        }
        print_json(summary, json_style)
