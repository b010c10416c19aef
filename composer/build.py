"""Plan -> image: the build stages in order, in a private work directory.

Outputs are made in a hidden staging directory in the output directory and published
(composer/publish.py) only when every stage succeeded: an interrupted build leaves no
half-written image, and a failed one leaves its log, ``NAME.build.log``. Scratch and staging
directories are locked temporaries (composer/workdir.py) that the next build removes when a
killed build could not. The build log marks where each stage starts (``# stage: NAME``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from composer import dps, measured_boot, output, resolution_check, space, stage_keys, tools
from composer.boot.chain import default_keys_dir, stage_boot_chain
from composer.boot.systemd_boot import uki_file_name
from composer.build_context import (
    BuildResult,
    Context,
    StageHook,
    default_cache_dir,
    image_needs,
    keep_failed_log,
    quiet_stage,
    read_json,
    reuse_cached_image,
    timed,
)
from composer.cache import IN_USE_GRACE, StageCache, max_size_from_env, sweep_temporaries
from composer.cache_secret import cache_secret
from composer.disk.fs import Reproducible, copy_into, make_vfat
from composer.disk.gpt import GptEntry, write_gpt
from composer.disk.partitions import build_partitions, manifest_entry
from composer.image_manifest import manifest_name
from composer.layout import PartitionPlan
from composer.measure import PHASES, predict_pcr11, uki_sections
from composer.plan import Plan
from composer.publish import known_digests, publish
from composer.publish import store_image as _store_outputs
from composer.reproducible import clamp_mtimes, source_date_epoch
from composer.rootfs import apt, backend, customize, extras, versions
from composer.uki import image as uki_image
from composer.uki.build import Uki, build_uki
from composer.uki.toolstree import ensure_tools_tree, tools_key
from composer.workdir import owned_dir, scratch_dir, sweep, work_parent

BOOTED_PHASE = PHASES[-1]
STAGING = ".{name}.partial-"  # the staging directory's prefix in the output directory
__all__ = ["BuildResult", "StageHook", "build", "copy_tree", "default_cache_dir"]


def build(
    plan: Plan,
    output_dir: Path,
    *,
    cache_dir: Path | None = None,
    stage: StageHook = quiet_stage,
    work_root: Path | None = None,
    use_cache: bool = True,
) -> BuildResult:
    """``use_cache=False`` builds every stage afresh and stores nothing (downloaded packages
    and the tools tree are still reused). A failed or interrupted build leaves its log as
    ``NAME.build.log`` in ``output_dir`` (named in a note on the exception)."""
    cache_cap = max_size_from_env()  # a bad value fails before any work
    output_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    scratch = work_parent(work_root)
    sweep(output_dir, STAGING.format(name="*") + "*")  # what killed builds left behind
    sweep_temporaries(cache)
    with (
        scratch_dir(plan.name, scratch) as work,
        owned_dir(output_dir, STAGING.format(name=plan.name)) as staging,
    ):
        log = staging / f"{plan.name}.build.log"
        places = space.Places(scratch, cache, output_dir)
        ctx = Context(plan, work, cache, log, places, use_cache)
        try:
            with space.disk_full_errors(places, lambda: ctx.needs):
                result = _run_stages(ctx, staging, stage)
                files, manifest = publish(
                    plan.name, [*result.outputs, result.log], result.manifest, output_dir
                )
        except BaseException as exc:
            keep_failed_log(ctx, output_dir, exc)
            raise
    published = BuildResult(
        manifest, files[:-1], files[-1], result.timings, result.cache, ctx.warnings
    )
    if use_cache and cache_cap is not None:
        try:
            StageCache(cache).prune(max_size=cache_cap, grace=IN_USE_GRACE)
        except OSError as exc:  # the image is published; a cache that cannot shrink is a note
            published.warnings.append(f"stage cache not trimmed: {exc}")
    return published


def _run_stages(ctx: Context, staging: Path, stage: StageHook) -> BuildResult:
    plan, work = ctx.plan, ctx.work
    arch = plan.arch
    with timed(ctx, stage, "tools tree"):
        tools_tree = ensure_tools_tree(ctx.cache, arch, ctx.log)
    # uki-virt (issue 4): a blueprint listing it installs it from a cached local repository;
    # the root tree comes from the distribution's backend (apt: mmdebstrap, dnf: dnf)
    uki_repo = None
    if uki_image.lists_uki_virt(plan):
        with timed(ctx, stage, "uki-virt"):
            uki_repo = uki_image.prepare_repo(plan, ctx.cache, ctx.log)
    local_repos = [uki_repo.repo] if uki_repo else []
    with timed(ctx, stage, "cache keys"):
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
    with ctx.building("image", image_key):
        entry = ctx.lookup("image", image_key)
        if entry is not None:  # nothing changed: the earlier build's outputs
            reused = reuse_cached_image(ctx, entry, staging)
            if reused is not None:
                # its ingredients stay warm too: the next customization change needs them
                for name, key in (("root", root_key), ("uki", uki_key)):
                    if key is not None:
                        StageCache(ctx.cache).touch(name, key)
                return reused
        with timed(ctx, stage, "package check"):  # what the archive decides, before long stages
            resolution_check.check(plan, pins, cache=ctx.cache, log=ctx.log, key=root_key)
        root = work / "root"
        with ctx.building("root", root_key):
            entry = ctx.lookup("root", root_key)
            ctx.needs = image_needs(ctx, entry, image_key is not None)
            space.require(ctx.places, ctx.needs)
            with timed(ctx, stage, "root tree"):
                if entry is not None:
                    copy_tree(entry / "tree", root, ctx.log)
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
                    ctx.store("root", root_key, lambda d: copy_tree(root, d / "tree", ctx.log))
        with timed(ctx, stage, "UKI"):
            uki, uki_rel = _uki(ctx, tools_tree, root, uki_key)
        result = _image_stages(ctx, staging, stage, tools_tree, root, pins, uki, uki_rel)
        ctx.store(
            "image",
            image_key,
            lambda d: _store_outputs(result.outputs, result.manifest, d),
            known_digests(read_json(result.manifest)),
        )
        return result


def _root_key(
    ctx: Context, pins: dict[str, str], local_repos: list[Path], tools: str
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


def _uki(ctx: Context, tools_tree: Path, root: Path, key: str | None) -> tuple[Uki, str]:
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
    with ctx.building("uki", key):
        entry = ctx.lookup("uki", key, hash_files=True)
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
    ctx: Context,
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
    with timed(ctx, stage, "customize"):
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
    with timed(ctx, stage, "ESP"):
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
    with timed(ctx, stage, "file systems"):
        if ctx.epoch is not None:
            clamp_mtimes(root, ctx.epoch)
        images = build_partitions(plan, root, work / "parts", ctx.log, repro)
    raw = staging / plan.output_name("raw")
    with timed(ctx, stage, "disk"):
        with open(raw, "wb") as fh:
            fh.truncate(plan.disk_size)
        write_gpt(raw, plan.disk_guid, [_gpt_entry(p) for p in plan.partitions])
        copy_into(esp_img, raw, esp_part.start)
        for p in plan.partitions:
            if p.number in images:
                copy_into(images[p.number], raw, p.start)
    with timed(ctx, stage, "outputs"):
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
    manifest_path = staging / manifest_name(plan.name)
    output.write_json_atomic(manifest_path, manifest)
    files = [staging / o["file"] for o in outputs]
    if chain.varstore is not None:
        files.append(chain.varstore)
    return BuildResult(manifest_path, files, ctx.log, ctx.timings, ctx.status)


def copy_tree(src: Path, dest: Path, log: Path | None = None) -> None:
    """A copy of a root tree: owners, modes, hard links, xattrs kept; reflinked where the
    file system can."""
    tools.run(["cp", "-a", "--reflink=auto", "--", str(src), str(dest)], log=log)


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
        # users whose password the build generated: OUTPUT/NAME.USER.password (mode 0600)
        "generated_passwords": [u.name for u in plan.customizations.user if u.generate_password],
        "timings": timings,
    }
