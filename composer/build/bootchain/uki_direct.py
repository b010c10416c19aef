"""No boot loader: the firmware starts the UKI itself, from a Boot#### entry in the varstore
shipped beside the image and, failing that, from the removable-media path EFI/BOOT/BOOT<ARCH>.EFI
(a copy of the UKI), as Fedora's uki-direct does with kernel-bootcfg."""

from __future__ import annotations

import shutil
from pathlib import Path

from composer.build.bootchain.grub import uki_entry
from composer.image.varstore import BootOption
from composer.plan.plan import Plan
from composer.spec.arch import removable_path
from composer.spec.pe import file_sections


def stage_uki_direct(esp: Path, uki_rel: str, efi_arch: str) -> list[Path]:
    """Copy the UKI (already in ``esp/uki_rel``) to the removable-media path; returns it."""
    fallback = esp / removable_path(efi_arch)
    fallback.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(esp / uki_rel, fallback)
    return [fallback]


def boot_option(plan: Plan, esp: Path, uki_rel: str) -> BootOption:
    """The Boot#### entry for the UKI on the plan's ESP, titled "PRETTY_NAME (version)"."""
    part = plan.partition("esp")
    title = uki_entry(Path(uki_rel).name, file_sections(esp / uki_rel)).title
    return BootOption(
        title=title,
        path=uki_rel,
        partition_number=part.number,
        partition_uuid=part.uuid,
        partition_start=part.start,
        partition_size=part.size,
    )
