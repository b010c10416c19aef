"""The fixup entry points: on the running system, or offline on an image (in place or a copy)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from composer.core import tools
from composer.core.errors import UsageError
from composer.core.files import check_target
from composer.core.workdir import owned_dir, sweep
from composer.fixup import guest, running
from composer.fixup.actions import FixupPlan
from composer.fixup.facts import LOADERS
from composer.fixup.plan import plan_fixup
from composer.image.formats import detect_format
from composer.toolchain.guestfs import hypervisor_note

Say = Callable[[str], None]


def _check_loader(loader: str) -> None:
    if loader not in LOADERS:
        raise UsageError(f"--loader: {loader!r} is not one of {', '.join(LOADERS)}")


def fixup_running(*, loader: str = "keep", dry_run: bool = False) -> FixupPlan:
    """Plan (and unless ``dry_run`` apply) the fixup of the system this runs on."""
    _check_loader(loader)
    if os.geteuid() != 0:
        raise UsageError("fixup --running changes the partition table: run it as root")
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
    """Fix ``image`` in place, or a copy of it at ``output`` (a fresh temporary beside it,
    renamed into place when done: composer/core/files.py). An image that names other files
    (backing file, VMDK extents) is refused before anything opens it."""
    _check_loader(loader)
    if not image.is_file():
        raise UsageError(f"{image}: no such image file")
    if dry_run and (output is not None or install is not None):
        raise UsageError("--dry-run changes nothing: it cannot be combined with -o or --install")
    detect_format(image)  # refuses images that name other files, before anything opens them
    if output is None:
        return _fix(image, loader=loader, dry_run=dry_run, install=install, say=say)
    if output.absolute() == image.absolute() or (output.exists() and output.samefile(image)):
        raise UsageError(f"-o {output}: that is the image itself; leave -o out to fix in place")
    check_target(output)
    prefix = f".{output.name}.partial-"  # a locked temporary: a killed run's copy is swept
    sweep(output.parent, prefix + "*")
    with owned_dir(output.parent, prefix) as tmp:
        partial = tmp / output.name
        say(f"copying {image} -> {output}")
        tools.run(["cp", "--sparse=always", "--reflink=auto", "--", str(image), str(partial)])
        os.chmod(partial, stat.S_IMODE(image.stat().st_mode))
        plan = _fix(partial, loader=loader, dry_run=False, install=install, say=say, copy=True)
        check_target(output)
        os.replace(partial, output)
        return plan


def _fix(
    image: Path,
    *,
    loader: str,
    dry_run: bool,
    install: Path | None,
    say: Say,
    copy: bool = False,
) -> FixupPlan:
    """Decide read-only first: an image with nothing to do is never opened for writing (its
    bytes stay as they were, and a published image's checksum with them); only a real change
    (or --install) opens it read-write, and plans again from what it finds there.

    ``copy``: ``image`` is this run's own fresh copy (``-o``), which nothing else has open: it
    is opened read-write at once, one libguestfs launch instead of two (about 20 s under TCG),
    and decided with its file systems mounted read-only, so that a copy with nothing to do
    stays byte for byte the image it was copied from (unless a file system's journal needs
    recovery: the kernel replays it even for a read-only mount of a writable disk)."""
    if install is None and not copy:
        say(f"opening {image} read-only with libguestfs ({hypervisor_note()}; TCG: about 20 s)")
        with guest.open_image(image, readonly=True) as g:
            facts, _ = guest.gather(g)
            plan = plan_fixup(facts, loader)
            g.umount_all()
        if dry_run or not plan.actions:
            return plan
    say(
        f"opening {image} read-write with libguestfs ({hypervisor_note()}"
        + ("; TCG: about 20 s)" if copy else ") to change it")
    )
    with guest.open_image(image, readonly=False) as g:
        if install is None and copy:  # decided read-only; changed in the same appliance
            facts, mounts = guest.gather(g, readonly=True)
            plan = plan_fixup(facts, loader)
            g.umount_all()
            if not plan.actions:
                return plan
            guest.mount_all(g, mounts)
        else:
            if install is not None:
                guest.mount_system(g)
                say(guest.install_package(g, install).strip() or f"installed {install.name}")
                g.umount_all()
            facts, _ = guest.gather(g)
            plan = plan_fixup(facts, loader)
        guest.apply(g, facts, plan.actions)
        g.umount_all()
    return plan
