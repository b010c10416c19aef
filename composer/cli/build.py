"""`dps-composer plan` and `dps-composer build`."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from composer.cli.common import CacheDir, JsonStyle, guard, human, print_json, say, wrote
from composer.cli.progress import (
    ProgressMode,
    ProgressOption,
    QuietOption,
    VerboseOption,
    resolve_mode,
    stage_progress,
    verbose_log,
)
from composer.core import paths
from composer.core.errors import KeyedProblems
from composer.core.secret import cache_secret, write_password_file

# The work's modules are imported by the commands that run it: `--help`, completion and the
# other commands start without them (composer/cli/commands.py).
if TYPE_CHECKING:
    from composer.blueprint.model import Blueprint
    from composer.build.pipeline import BuildResult
    from composer.plan.plan import Plan
    from composer.rootfs.resolution import Resolved


def _load_plan(path: Path) -> tuple[Blueprint, Plan]:
    from composer.plan.load import load as load_blueprint
    from composer.plan.plan import make_plan

    blueprint = load_blueprint(path)
    return blueprint, make_plan(blueprint, str(path))


@contextlib.contextmanager
def _at_lines(blueprint: Blueprint) -> Iterator[None]:
    """Problems found after package resolution, named with the blueprint's file and lines."""
    try:
        yield
    except KeyedProblems as exc:
        raise blueprint.error(list(exc.problems)) from None


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
    cache_dir: CacheDir = None,
) -> None:
    """Print the build plan (partitions, UUIDs, packages, boot chain, the build's stages in
    order) as JSON.

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
    sys.stdout.write(json.dumps({**p.to_dict(), "stages": stage_list(p)}, indent=2) + "\n")


def stage_list(p: Plan) -> list[dict[str, object]]:
    """The stages a build of ``p`` goes through, in order (composer/build/stages/)."""
    from composer.build.stages.sequence import STAGES

    return [
        {"name": s.name, "runs": s.applies(p), "cached": s.cached, "does": s.summary}
        for s in STAGES
    ]


def _resolve(p: Plan, cache_dir: Path | None) -> Resolved | None:
    from composer.rootfs import resolution

    cache = cache_dir or paths.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    return resolution.check(p, None, cache=cache)


def build(
    blueprint: Annotated[Path, typer.Argument(help="Blueprint TOML file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory")] = Path("out"),
    cache_dir: CacheDir = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Rebuild every stage; store nothing (packages are still reused)"
        ),
    ] = False,
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            help="Secure Boot key directory (PK, KEK, db), instead of [secureboot] keys: "
            "a blueprint may only name one below its own directory",
        ),
    ] = None,
    pcr_keys: Annotated[
        Path | None,
        typer.Option(
            "--pcr-keys",
            help="PCR policy key pair directory, instead of [measured] keys: a blueprint may "
            "only name one below its own directory",
        ),
    ] = None,
    json_style: JsonStyle = None,
    progress: ProgressOption = ProgressMode.auto,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Build the image: root tree, UKI, ESP, disk, outputs and NAME.manifest.json.

    Stages whose inputs did not change since an earlier build are taken from the stage cache.
    A failed build leaves NAME.build.log in the output directory.
    """
    from composer.build.pipeline import build as run_build
    from composer.plan.plan import with_key_dirs

    with guard("interrupted: no image was written"):
        bp, p = _load_plan(blueprint)
        p = with_key_dirs(p, keys, pcr_keys)
        mode = resolve_mode(progress, quiet)
        with verbose_log(verbose), stage_progress(mode) as stage, _at_lines(bp):
            result = run_build(p, output, cache_dir=cache_dir, stage=stage, use_cache=not no_cache)
    console = human(json_style)
    for warning in result.warnings:
        say(f"warning: {warning}", "yellow")
    for path in result.outputs:
        wrote(path, console=console)
    wrote(result.manifest, console=console)
    with guard():
        passwords = _write_generated_passwords(p, output, cache_dir or paths.cache_dir())
        for user, path in passwords:
            wrote(path, console=console)
            say(f"log in as {user}: the password is in {path} (mode 0600)", console=console)
    total = result.elapsed or sum(result.timings.values())
    say(
        f"built in {total:.1f} s: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()),
        console=console,
    )
    cached = [stage for stage, state in result.cache.items() if state == "hit"]
    if cached:
        say("from the stage cache: " + ", ".join(cached), console=console)
    if json_style:
        with guard():
            print_json(build_document(result, dict(passwords)), json_style)


def build_document(result: BuildResult, passwords: dict[str, Path]) -> dict[str, object]:
    """`build --json`: what was written, and the manifest in brief."""
    from composer.manifest.load import read_manifest

    m = read_manifest(result.manifest)
    return {
        "manifest": str(result.manifest),
        "outputs": [str(path) for path in result.outputs],
        "log": str(result.log),
        "passwords": {user: str(path) for user, path in passwords.items()},
        "warnings": list(result.warnings),
        "timings": dict(result.timings),
        "cache": dict(result.cache),
        "image": {
            "name": m.name,
            "version": m.version,
            "distro": m.distro,
            "architecture": m.architecture,
            "loader": m.boot.loader,
            "secure_boot": m.secureboot.signed,
            "kernel": m.uki.kernel_version,
            "outputs": [
                {"file": o.file, "format": o.format, "size": o.size, "sha256": o.sha256}
                for o in m.outputs
            ],
            "composer": m.composer.model_dump() if m.composer else None,
        },
    }


def _write_generated_passwords(p: Plan, output: Path, cache: Path) -> list[tuple[str, Path]]:
    """OUTPUT/NAME.USER.password of every user with generate_password (core/secret.py)."""
    users = [u.name for u in p.customizations.user if u.generate_password]
    if not users:
        return []
    secret = cache_secret(cache)
    return [(user, write_password_file(output, secret, p.name, user)) for user in users]
