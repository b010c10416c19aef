"""The blueprint's customizations applied to the root tree, offline: every path resolved
inside the tree (composer/rootfs/customize.py, composer/rootfs/extras.py)."""

from __future__ import annotations

from composer.build.context import Context
from composer.build.stages.stage import Stage
from composer.core.secret import cache_secret
from composer.rootfs import backend, customize, extras, updated


def run(ctx: Context) -> None:
    plan, root = ctx.plan, ctx.made.root
    assert root is not None
    customize.prepare_system(root)
    secret = cache_secret(ctx.cache)  # generated passwords derive from it
    customize.apply(root, plan.customizations, secret=secret, image=plan.name, epoch=ctx.epoch)
    extras.apply(root, plan)
    customize.install_check_unit(root)
    customize.set_services(root, plan.customizations)  # units of files too
    ctx.made.packages = backend.installed_packages(plan, root)
    updated.mark_updated(root, ctx.epoch)  # last: the stamps hold only for the tree as it is now


STAGE = Stage(
    "customize",
    "host name, users and groups, SSH keys, time zone, locale, files and directories, "
    "services, an empty /etc/machine-id, fstab lines only for what DPS does not mount, the "
    "boot check unit, the definitions of [measured] sealed volumes, /etc/.updated and "
    "/var/.updated where the tree shows that the first boot's update services would change "
    "nothing",
    inputs=(
        "plan.customizations",
        "plan.name",
        "plan.distro",
        "plan.machine_id",
        "plan.fstab",
        "plan.grow_root",
        "plan.partitions",
        "plan.sealed",
        "plan.sealed_size",
        "plan.recovery",
        "secret",
        "epoch",
    ),
    after=("root", "uki"),  # the tree as the uki stage left it (uki-virt installed)
    run=run,
)
