"""The fixup entry points: on the running system, or offline on an image (in place or a copy)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from composer import tools
from composer.errors import ComposerError
from composer.files import check_target
from composer.fixup import guest, running
from composer.fixup.actions import FixupPlan
from composer.fixup.facts import LOADERS
from composer.fixup.plan import plan_fixup
from composer.workdir import owned_dir, sweep

Say = Callable[[str], None]


def _check_loader(loader: str) -> None:
    if loader not in LOADERS:
        raise ComposerError(f"--loader: {loader!r} is not one of {', '.join(LOADERS)}")


def fixup_running(*, loader: str = "keep", dry_run: bool = False) -> FixupPlan:
    """Plan (and unless ``dry_run`` apply) the fixup of the system this runs on."""
    _check_loader(loader)
    if os.geteuid() != 0:
        raise ComposerError("fixup --running changes the partition table: run it as root")
    with contextlib.ExitStack() as stack:
        facts = running.gather(stack)
        plan = plan_fixup(facts, loader)
        if not dry_run:
            running.apply(facts, plan.actions)
    return plan


def fixup_image(
    image: Path,
    *,
    output: Path | None = None,
    loader: str = "keep",
    dry_run: bool = False,
    install: Path | None = None,
    say: Say = lambda _: None,
) -> FixupPlan:
    """Fix ``image`` in place, or a copy of it at ``output`` (written atomically)."""
    _check_loader(loader)
    if not image.is_file():
        raise ComposerError(f"{image}: no such image file")
    if dry_run and (output is not None or install is not None):
        raise ComposerError("--dry-run changes nothing: it cannot be combined with -o or --install")
    if output is None:
        return _fix(image, loader=loader, dry_run=dry_run, install=install, say=say)
    if output.resolve() == image.resolve():
        raise ComposerError(f"-o {output}: that is the image itself; leave -o out to fix in place")
    check_target(output)
    prefix = f".{output.name}.partial-"  # a locked temporary: a killed run's copy is swept
    sweep(output.parent, prefix + "*")
    with owned_dir(output.parent, prefix) as tmp:
        partial = tmp / output.name
        say(f"copying {image} -> {output}")
        tools.run(["cp", "--sparse=always", "--reflink=auto", "--", str(image), str(partial)])
        plan = _fix(partial, loader=loader, dry_run=dry_run, install=install, say=say)
        check_target(output)
        os.replace(partial, output)
        return plan


def _fix(image: Path, *, loader: str, dry_run: bool, install: Path | None, say: Say) -> FixupPlan:
    say(f"opening {image} with libguestfs (TCG: about 20 s)")
    with guest.open_image(image, readonly=dry_run) as g:
        if install is not None:
            guest.mount_system(g)
            say(guest.install_package(g, install).strip() or f"installed {install.name}")
            g.umount_all()
        facts, _ = guest.gather(g)
        plan = plan_fixup(facts, loader)
        if not dry_run:
            guest.apply(g, facts, plan.actions)
        g.umount_all()
    return plan
