"""What the archive says now: the blueprint's version globs resolved, the archive index's
digest (verified) and SOURCE_DATE_EPOCH: with them every stage's cache key is known
(composer/build/keys.py)."""

from __future__ import annotations

from pathlib import Path

from composer.build import keys
from composer.build.bootchain.chain import default_keys_dir
from composer.build.context import Context
from composer.build.facts import Facts
from composer.build.pcrpolicy import policy_key
from composer.build.reproducible import source_date_epoch
from composer.build.stages.stage import Stage
from composer.core.hashing import tree_digest
from composer.core.secret import cache_secret
from composer.rootfs import backend, versions
from composer.toolchain.toolstree import tools_key


def run(ctx: Context) -> None:
    ctx.pins = backend.resolve_pins(ctx.plan, cache=ctx.cache)
    ctx.epoch = source_date_epoch(ctx.plan)
    ctx.pcr_key = policy_key(ctx.plan, ctx.cache)  # a bad key directory fails in seconds
    ctx.facts = _facts(ctx)


def _facts(ctx: Context) -> Facts | None:
    """What the keys read besides the plan; None when nothing is cached (``--no-cache``, or
    an archive index that cannot be read: the log says why)."""
    if not ctx.use_cache:
        return None
    plan = ctx.plan
    index, why = versions.archive_index_digest(keys.index_urls(plan))
    if index is None:
        ctx.note(f"stage cache not used: {why}")
        return None
    key_dir = Path(plan.secureboot_keys or default_keys_dir(ctx.cache))
    signing = plan.secureboot_sign and key_dir.is_dir()
    return Facts(
        composer=keys.composer_digest(),
        tools=tools_key(plan.arch),
        local_repos=None,  # uki-virt's, which may still run (composer/build/pipeline.py)
        pins=ctx.pins,
        index=index,
        epoch=ctx.epoch,
        secureboot_keys=tree_digest(key_dir) if signing else None,
        secret=cache_secret(ctx.cache),
        pcr_key=ctx.pcr_key[0].fingerprint if ctx.pcr_key else None,
    )


STAGE = Stage(
    "resolve",
    "the blueprint's version globs resolved against the archive, its index read (InRelease "
    "verified with the archive keyring) and SOURCE_DATE_EPOCH: every stage's cache key",
    inputs=(
        "plan.distro",
        "plan.suite",
        "plan.mirror",
        "plan.architecture",
        "plan.package_pins",
        "plan.customizations.repositories",
        "plan.secureboot_sign",
        "plan.secureboot_keys",
        "plan.pcr_policy",
        "plan.pcr_keys",
    ),
    run=run,
)
