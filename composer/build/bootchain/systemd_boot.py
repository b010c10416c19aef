"""systemd-boot on the ESP, laid out as `bootctl install --no-variables` does, minus the
random seed (an image must not ship one: every machine made from it would share it)."""

from __future__ import annotations

import shutil
from pathlib import Path

from composer.spec.arch import removable_path


def stage_systemd_boot(esp: Path, tools_tree: Path, efi_arch: str, timeout: int) -> list[Path]:
    """Put systemd-boot and its loader configuration into the ESP staging tree ``esp``;
    returns the PE binaries it placed (for signing)."""
    binary = tools_tree / f"usr/lib/systemd/boot/efi/systemd-boot{efi_arch}.efi"
    if not binary.exists():
        raise FileNotFoundError(f"{binary}: is systemd-boot-efi in the tools tree?")
    for d in ("EFI/systemd", "EFI/BOOT", "EFI/Linux", "loader/entries", "loader/keys"):
        (esp / d).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(binary, esp / f"EFI/systemd/systemd-boot{efi_arch}.efi")
    shutil.copyfile(binary, esp / removable_path(efi_arch))
    # timeout 0: no menu, boot the default (newest UKI) at once; keys still reach the menu.
    (esp / "loader/loader.conf").write_text(f"timeout {timeout}\nconsole-mode keep\n")
    (esp / "loader/entries.srel").write_text("type1\n")
    return [
        esp / f"EFI/systemd/systemd-boot{efi_arch}.efi",
        esp / removable_path(efi_arch),
    ]


def uki_file_name(os_id: str, kernel_version: str) -> str:
    """BLS type #2 name: $BOOT/EFI/Linux/<entry-token>-<kernel version>.efi."""
    return f"{os_id}-{kernel_version}.efi"
