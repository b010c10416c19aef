"""Plan -> image: the build stages in order, in a private work directory.

Outputs are made in a hidden staging directory beside the destination and moved into
place only when every stage succeeded: an interrupted build leaves no half-written image.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer import dps, measured_boot, output, resolution_check, stage_keys, tools
from composer.boot.chain import default_keys_dir, stage_boot_chain
from composer.boot.systemd_boot import uki_file_name
from composer.cache import ENTRY, IN_USE_GRACE, StageCache, max_size_from_env
from composer.cache_secret import cache_secret
from composer.disk.fs import Reproducible, copy_into, make_vfat
from composer.disk.gpt import GptEntry, write_gpt
from composer.disk.partitions import build_partitions, manifest_entry
from composer.layout import PartitionPlan
from composer.measure import PHASES, predict_pcr11, uki_sections
from composer.plan import Plan
from composer.reproducible import clamp_mtimes, source_date_epoch
from composer.rootfs import apt, backend, customize, extras, versions
from composer.uki import image as uki_image
from composer.uki.build import Uki, build_uki
from composer.uki.toolstree import ensure_tools_tree, tools_key
from composer.workdir import scratch_dir, work_parent

BOOTED_PHASE = PHASES[-1]
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
    cache: dict[str, str] = field(default_factory=dict)  # stage -> hit, miss, off


@dataclass
class _Context:
    plan: Plan
    work: Path
    cache: Path
    log: Path
    use_cache: bool = True
    epoch: int | None = None  # SOURCE_DATE_EPOCH of every file in the image
    timings: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # stage -> hit, miss, off

    def note(self, text: str) -> None:
        with open(self.log, "a") as fh:
            fh.write(f"# {text}\n")

    def lookup(self, stage: str, key: str | None) -> Path | None:
        """The stage's cache entry for ``key``, recording hit or miss (off: no key)."""
        if key is None:
            self.status[stage] = "off"
            return None
        entry = StageCache(self.cache).get(stage, key)
        self.status[stage] = "hit" if entry is not None else "miss"
        self.note(f"stage cache {stage} {key}: {self.status[stage]}")
        return entry

    def store(self, stage: str, key: str | None, make: Callable[[Path], object]) -> None:
        if key is not None:
            StageCache(self.cache).put(stage, key, make, {"plan": self.plan.name})


def build(
    plan: Plan,
    output_dir: Path,
    *,
    cache_dir: Path | None = None,
    stage: StageHook = _quiet_stage,
    work_root: Path | None = None,
    use_cache: bool = True,
) -> BuildResult:
    """``use_cache=False`` builds every stage afresh and stores nothing (downloaded packages
    and the tools tree are still reused)."""
    cache_cap = max_size_from_env()  # a bad value fails before any work
    output_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with scratch_dir(plan.name, work_parent(work_root)) as work:
        staging = Path(tempfile.mkdtemp(prefix=f".{plan.name}.partial-", dir=output_dir))
        log = staging / f"{plan.name}.build.log"
        ctx = _Context(plan, work, cache, log, use_cache)
        try:
            result = _run_stages(ctx, staging, stage)
            published = _publish(result, staging, output_dir)
            if use_cache and cache_cap is not None:
                StageCache(cache).prune(max_size=cache_cap, grace=IN_USE_GRACE)
            return published
        finally:
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
    # uki-virt (issue 4): a blueprint listing it installs it from a cached local repository;
    # the root tree comes from the distribution's backend (apt: mmdebstrap, dnf: dnf)
    uki_repo = None
    if uki_image.lists_uki_virt(plan):
        with _timed(ctx, stage, "uki-virt"):
            uki_repo = uki_image.prepare_repo(plan, ctx.cache, ctx.log)
    local_repos = [uki_repo.repo] if uki_repo else []
    with _timed(ctx, stage, "cache keys"):
        pins = backend.resolve_pins(plan, cache=ctx.cache, log=ctx.log)
        ctx.epoch = source_date_epoch(plan)
        root_key = _root_key(ctx, pins, local_repos, tools_key(arch))
        uki_key = _uki_key(plan, root_key)
        image_key = None
        if root_key is not None:
            keys = Path(plan.secureboot_keys or default_keys_dir(ctx.cache))
            image_key = stage_keys.image_key(
                plan,
                root=root_key,
                uki=uki_key or root_key,  # uki-virt: the root tree holds the UKI
                keys=keys if plan.secureboot_sign else None,
                secret=cache_secret(ctx.cache),  # passwords go in blinded
            )
        entry = ctx.lookup("image", image_key)
        if entry is not None:  # nothing changed: the earlier build's outputs
            # its ingredients stay warm too: the next customization change needs them
            for name, key in (("root", root_key), ("uki", uki_key)):
                if key is not None:
                    StageCache(ctx.cache).get(name, key)
            return _reuse_image(ctx, entry, staging)
    with _timed(ctx, stage, "package check"):  # what the archive decides, before long stages
        resolution_check.check(plan, pins, cache=ctx.cache, log=ctx.log, key=root_key)
    root = work / "root"
    with _timed(ctx, stage, "root tree"):
        entry = ctx.lookup("root", root_key)
        if entry is not None:
            copy_tree(entry / "tree", root)
        else:
            backend.make_root(
                plan,
                root,
                pins,
                cache=ctx.cache,
                log=ctx.log,
                local_repos=local_repos,
                epoch=ctx.epoch,
            )
            ctx.store("root", root_key, lambda d: copy_tree(root, d / "tree"))
    with _timed(ctx, stage, "UKI"):
        uki, uki_rel = _uki(ctx, tools_tree, root, uki_key)
    result = _image_stages(ctx, staging, stage, tools_tree, root, pins, uki, uki_rel)
    ctx.store("image", image_key, lambda d: _store_image(result, d))
    return result


def _root_key(
    ctx: _Context, pins: dict[str, str], local_repos: list[Path], tools: str
) -> str | None:
    """The root tree's cache key, None when the package index cannot be read (no caching)."""
    if not ctx.use_cache:
        return None
    index, why = versions.archive_index_digest(stage_keys.index_urls(ctx.plan))
    if index is None:
        ctx.note(f"stage cache not used: {why}")
        return None
    return stage_keys.root_key(
        ctx.plan, index=index, pins=pins, local_repos=local_repos, tools=tools, epoch=ctx.epoch
    )


def _usr_type(plan: Plan) -> str:
    return str(dps.by_designator("usr", plan.arch.dps).uuid)  # the initrd's /usr discovery


def _uki_key(plan: Plan, root_key: str | None) -> str | None:
    """The UKI's cache key; None with uki-virt (the package placed it) or without a root key."""
    if root_key is None or uki_image.lists_uki_virt(plan):
        return None
    return stage_keys.uki_key(
        plan, root=root_key, usr_type=_usr_type(plan), tools=tools_key(plan.arch)
    )


def _uki(ctx: _Context, tools_tree: Path, root: Path, key: str | None) -> tuple[Uki, str]:
    """The image's UKI in the work directory (it may be signed there) and its ESP path.

    Built from the root tree before customizations: the initrd is generic, nothing of the
    blueprint's customizations reaches it, so one UKI serves every image of one package set.
    """
    plan, work = ctx.plan, ctx.work
    if uki_image.lists_uki_virt(plan):  # uki-virt (issue 4): the UKI its scripts placed
        placed = uki_image.take_placed_uki(root, work / "uki")
        return Uki(placed.path, placed.kernel_version, plan.cmdline), placed.rel
    kver = apt.kernel_version(root)
    uki_rel = f"EFI/Linux/{uki_file_name(plan.os_id, kver)}"
    entry = ctx.lookup("uki", key)
    if entry is None:
        uki = build_uki(
            tools_tree,
            root,
            kver,
            plan.cmdline,
            plan.arch.efi,
            work / "uki",
            ctx.log,
            _usr_type(plan),
        )
        ctx.store("uki", key, lambda d: shutil.copyfile(uki.path, d / "uki.efi"))
        return uki, uki_rel
    dest = work / "uki" / "uki.efi"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry / "uki.efi", dest)
    return Uki(dest, kver, plan.cmdline), uki_rel


def _image_stages(
    ctx: _Context,
    staging: Path,
    stage: StageHook,
    tools_tree: Path,
    root: Path,
    pins: dict[str, str],
    uki: Uki,
    uki_rel: str,
) -> BuildResult:
    plan, work = ctx.plan, ctx.work
    arch = plan.arch
    with _timed(ctx, stage, "customize"):
        customize.prepare_system(root)
        secret = cache_secret(ctx.cache)  # generated passwords derive from it
        customize.apply(root, plan.customizations, ctx.log, secret=secret, image=plan.name)
        extras.apply(root, plan, ctx.log)
        customize.install_check_unit(root)
        customize.set_services(root, plan.customizations, ctx.log)  # units of files too
        packages = backend.installed_packages(plan, root)
    kver = uki.kernel_version
    esp_part = plan.partition("esp")
    esp_tree = work / "esp"
    with _timed(ctx, stage, "ESP"):
        chain = stage_boot_chain(
            plan,
            esp_tree,
            tools_tree,
            uki.path,
            uki_rel,
            cache=ctx.cache,
            work=work / "boot",
            varstore_dest=staging / f"{plan.name}.vars.fd",
            log=ctx.log,
        )
        esp_img = work / "esp.img"
        volume_id = plan.derive("fs:esp:volume-id").hex[:8]
        repro = Reproducible(ctx.epoch, tools_tree)
        make_vfat(esp_img, esp_part.size, esp_tree, volume_id, esp_part.fs_label, ctx.log, repro)
    with _timed(ctx, stage, "file systems"):
        if ctx.epoch is not None:
            clamp_mtimes(root, ctx.epoch)
        images = build_partitions(plan, root, work / "parts", ctx.log, repro)
    raw = staging / plan.output_name("raw")
    with _timed(ctx, stage, "disk"):
        with open(raw, "wb") as fh:
            fh.truncate(plan.disk_size)
        write_gpt(raw, plan.disk_guid, [_gpt_entry(p) for p in plan.partitions])
        copy_into(esp_img, raw, esp_part.start)
        for p in plan.partitions:
            if p.number in images:
                copy_into(images[p.number], raw, p.start)
    with _timed(ctx, stage, "outputs"):
        outputs = output.make_outputs(
            raw,
            plan.formats,
            lambda fmt: staging / plan.output_name(fmt),
            ctx.log,
            plan.qcow2_compression,
        )
        if "raw" not in plan.formats:
            raw.unlink()
    pcr11 = predict_pcr11(uki_sections(uki.path), banks=("sha256",))
    manifest = _manifest(plan, uki_rel, uki.path, kver, packages, outputs, pcr11, ctx.timings)
    manifest.update(chain.manifest())  # boot chain, Secure Boot, varstore
    manifest["package_pins"] = pins  # version globs of the blueprint, as resolved
    manifest["source_date_epoch"] = ctx.epoch
    manifest["expect"]["secure_boot"] = True if chain.keys is not None else None
    # PCR 4 and 7 from the final (signed) ESP files and the varstore the image boots with
    manifest["measured_boot"] = measured_boot.predict(
        loader=plan.loader,
        esp=esp_tree,
        uki_rel=uki_rel,
        loaders=chain.loaders,
        efi_arch=arch.efi,
        varstore=chain.varstore,
    )
    manifest["expect"]["pcrs"].update(measured_boot.enforced_pcrs(manifest["measured_boot"]))
    manifest["cache"] = ctx.status
    manifest_path = staging / "manifest.json"
    output.write_json_atomic(manifest_path, manifest)
    files = [staging / o["file"] for o in outputs]
    if chain.varstore is not None:
        files.append(chain.varstore)
    return BuildResult(manifest_path, files, ctx.log, ctx.timings, ctx.status)


def copy_tree(src: Path, dest: Path) -> None:
    """A copy of a root tree: owners, modes, hard links, xattrs kept; reflinked where the
    file system can."""
    tools.run(["cp", "-a", "--reflink=auto", "--", str(src), str(dest)])


def _copy_file(src: Path, dest: Path) -> None:
    """Sparse files stay sparse (disk images)."""
    tools.run(["cp", "--reflink=auto", "--sparse=always", "--", str(src), str(dest)])


def _store_image(result: BuildResult, entry: Path) -> None:
    for path in [*result.outputs, result.manifest]:
        _copy_file(path, entry / path.name)


def _reuse_image(ctx: _Context, entry: Path, staging: Path) -> BuildResult:
    """Every output of an earlier build with the same key, copied into ``staging``."""
    files = []
    for path in sorted(entry.iterdir()):
        if path.name in (ENTRY, "manifest.json"):
            continue
        _copy_file(path, staging / path.name)
        files.append(staging / path.name)
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["cache"] = ctx.status
    manifest["timings"] = ctx.timings
    manifest_path = staging / "manifest.json"
    output.write_json_atomic(manifest_path, manifest)
    return BuildResult(manifest_path, files, ctx.log, ctx.timings, ctx.status)


def _gpt_entry(p: PartitionPlan) -> GptEntry:
    return GptEntry(p.number, p.start, p.size, p.type_uuid, p.uuid, p.label, p.attrs)


def _manifest(
    plan: Plan,
    uki_rel: str,
    uki_path: Path,
    kver: str,
    packages: dict[str, str],
    outputs: list[dict[str, Any]],
    pcr11: dict[str, dict[str, str]],
    timings: dict[str, float],
) -> dict[str, Any]:
    booted = pcr11["sha256"][BOOTED_PHASE]
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
            "partitions": [manifest_entry(p) for p in plan.partitions],
            "fstab": list(plan.fstab),
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
            # The check runs once the system is up: every phase up to "ready" is measured.
            "pcrs": {"11": booted},
            # every partition mounted where DPS (or its fstab line) puts it; / fills the disk
            "dps_mounts": True,
            "grow_root": plan.grow_root,
        },
        "pcr11": {"phases": pcr11, "booted_phase": BOOTED_PHASE},
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
    return BuildResult(manifest, moved[:-1], moved[-1], result.timings, result.cache)
