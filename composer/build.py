"""Plan -> image: the build stages in order, in a private work directory.

Outputs are made in a hidden staging directory beside the destination and moved into
place only when every stage succeeded: an interrupted build leaves no half-written image.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer import output
from composer.boot.systemd_boot import stage_systemd_boot, uki_file_name
from composer.disk.fs import copy_into, make_ext4, make_vfat
from composer.disk.gpt import GptEntry, write_gpt
from composer.plan import PartitionPlan, Plan
from composer.rootfs import apt, customize
from composer.uki.build import build_uki
from composer.uki.toolstree import ensure_tools_tree

StageHook = Callable[[str], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def _quiet_stage(name: str) -> Iterator[None]:
    yield


def default_cache_dir() -> Path:
    env = os.environ.get("DPS_COMPOSER_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dps-composer"


@dataclass
class BuildResult:
    manifest: Path
    outputs: list[Path]
    log: Path
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Context:
    plan: Plan
    work: Path
    cache: Path
    log: Path
    timings: dict[str, float] = field(default_factory=dict)


def build(
    plan: Plan,
    output_dir: Path,
    *,
    cache_dir: Path | None = None,
    stage: StageHook = _quiet_stage,
    work_root: Path | None = None,
) -> BuildResult:
    output_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"dps-composer-{plan.name}-", dir=work_root or "/var/tmp"))
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.name}.partial-", dir=output_dir))
    log = staging / f"{plan.name}.build.log"
    ctx = _Context(plan, work, cache, log)
    try:
        result = _run_stages(ctx, staging, stage)
        return _publish(result, staging, output_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _timed(ctx: _Context, stage: StageHook, name: str) -> Iterator[None]:
    start = time.monotonic()
    with stage(name):
        yield
    ctx.timings[name] = round(time.monotonic() - start, 2)


def _run_stages(ctx: _Context, staging: Path, stage: StageHook) -> BuildResult:
    plan, work = ctx.plan, ctx.work
    arch = plan.arch
    with _timed(ctx, stage, "tools tree"):
        tools_tree = ensure_tools_tree(ctx.cache, arch, ctx.log)
    root = work / "root"
    with _timed(ctx, stage, "root tree"):
        apt.mmdebstrap(
            root,
            suite=plan.suite,
            mirror=plan.mirror,
            arch=arch,
            packages=plan.packages,
            archive_cache=ctx.cache / "archives" / f"{plan.suite}-{arch.debian}",
            log=ctx.log,
        )
    with _timed(ctx, stage, "customize"):
        customize.prepare_system(root)
        customize.apply(root, plan.customizations, ctx.log)
        customize.install_check_unit(root)
        packages = apt.installed_packages(root)
        kver = apt.kernel_version(root)
    with _timed(ctx, stage, "UKI"):
        uki = build_uki(tools_tree, root, kver, plan.cmdline, arch.efi, work / "uki", ctx.log)
    esp_part, root_part = plan.partition("esp"), plan.partition("root")
    esp_tree = work / "esp"
    uki_rel = f"EFI/Linux/{uki_file_name(plan.os_id, kver)}"
    with _timed(ctx, stage, "ESP"):
        stage_systemd_boot(esp_tree, tools_tree, arch.efi, plan.loader_timeout)
        shutil.copyfile(uki.path, esp_tree / uki_rel)
        esp_img = work / "esp.img"
        volume_id = plan.derive("fs:esp:volume-id").hex[:8]
        make_vfat(esp_img, esp_part.size, esp_tree, volume_id, esp_part.fs_label, ctx.log)
    with _timed(ctx, stage, "root file system"):
        root_img = work / "root.img"
        hash_seed = str(plan.derive("fs:root:hash-seed"))
        make_ext4(
            root_img,
            root_part.size,
            root,
            root_part.fs_uuid,
            root_part.fs_label,
            hash_seed,
            ctx.log,
        )
    raw = staging / plan.output_name("raw")
    with _timed(ctx, stage, "disk"):
        with open(raw, "wb") as fh:
            fh.truncate(plan.disk_size)
        write_gpt(raw, plan.disk_guid, [_gpt_entry(p) for p in plan.partitions])
        copy_into(esp_img, raw, esp_part.start)
        copy_into(root_img, raw, root_part.start)
    outputs: list[dict[str, Any]] = []
    with _timed(ctx, stage, "outputs"):
        for fmt in plan.formats:
            if fmt != "raw":
                output.convert(raw, fmt, staging / plan.output_name(fmt), ctx.log)
        for fmt in plan.formats:
            outputs.append(output.describe(staging / plan.output_name(fmt), fmt))
        if "raw" not in plan.formats:
            raw.unlink()
    manifest = _manifest(plan, uki_rel, uki.path, kver, packages, outputs, ctx.timings)
    manifest_path = staging / "manifest.json"
    output.write_json_atomic(manifest_path, manifest)
    files = [staging / o["file"] for o in outputs]
    return BuildResult(manifest_path, files, ctx.log, ctx.timings)


def _gpt_entry(p: PartitionPlan) -> GptEntry:
    return GptEntry(p.number, p.start, p.size, p.type_uuid, p.uuid, p.label)


def _manifest(
    plan: Plan,
    uki_rel: str,
    uki_path: Path,
    kver: str,
    packages: dict[str, str],
    outputs: list[dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    return {
        "manifest_version": 1,
        "name": plan.name,
        "version": plan.version,
        "architecture": plan.architecture,
        "distro": plan.distro,
        "seed": plan.seed,
        "disk": {
            "size": plan.disk_size,
            "guid": plan.disk_guid,
            "partitions": [
                {
                    "number": p.number,
                    "designator": p.designator,
                    "type_name": p.type_name,
                    "type_uuid": p.type_uuid,
                    "uuid": p.uuid,
                    "label": p.label,
                    "offset": p.start,
                    "size": p.size,
                    "filesystem": p.filesystem,
                    "fs_uuid": p.fs_uuid,
                    "mountpoint": p.mountpoint,
                }
                for p in plan.partitions
            ],
        },
        "boot": {"loader": plan.loader},
        "uki": {
            "path": uki_rel,
            "sha256": output.sha256_file(uki_path),
            "size": uki_path.stat().st_size,
            "kernel_version": kver,
            "cmdline": plan.cmdline,
        },
        "packages": packages,
        "outputs": outputs,
        "expect": {
            "root_type_uuid": plan.root_type_uuid,
            "tpm": plan.validate_tpm,
            "secure_boot": None,
            "pcrs": {},
        },
        "validate": {"timeout": plan.validate_timeout},
        "timings": timings,
    }


def _publish(result: BuildResult, staging: Path, output_dir: Path) -> BuildResult:
    """Move every output into ``output_dir``; the manifest goes last."""
    moved: list[Path] = []
    for path in [*result.outputs, result.log]:
        dest = output_dir / path.name
        os.replace(path, dest)
        moved.append(dest)
    manifest = output_dir / "manifest.json"
    os.replace(result.manifest, manifest)
    return BuildResult(manifest, moved[:-1], moved[-1], result.timings)
