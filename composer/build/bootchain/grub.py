"""GRUB on the ESP: a standalone EFI image (every module built in, so nothing is loaded from
disk, which GRUB's lockdown forbids under Secure Boot; no shim_lock verifier, as there is no
shim) and a grub.cfg with one chainloader entry per UKI in ``ESP/EFI/Linux``. GRUB does not read
UKIs from BLS on every distribution (upstream's blsuki module, which reads /EFI/Linux, is newer
than the GRUB 2.12 Debian ships); chainloading is the portable way."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from composer import DATA
from composer.core.chroot import run_in
from composer.core.errors import ComposerError, HostError
from composer.spec import osrelease
from composer.spec.arch import Arch, removable_path
from composer.spec.pe import file_sections

# Built into the image: GPT + FAT to read the ESP, the menu, chainloading, serial terminal,
# TPM measurements (PCR 8/9) and the few commands grub.cfg uses.
GRUB_MODULES = (
    "part_gpt",
    "fat",
    "normal",
    "configfile",
    "chain",
    "serial",
    "terminfo",
    "echo",
    "test",
    "search",
    "search_fs_uuid",
    "search_fs_file",
    "sleep",
    "reboot",
    "halt",
    "tpm",
)
PREFIX = "/EFI/BOOT"  # grub.cfg lives beside the binary, on the device GRUB was loaded from
WORK = "/run/dps-work"


@dataclass(frozen=True)
class GrubEntry:
    id: str
    title: str
    path: str  # absolute on the ESP, e.g. /EFI/Linux/debian-6.12.43+deb13-amd64.efi
    version: str


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key comparing digit runs as numbers (6.12.10 after 6.12.9), like filevercmp."""
    parts = re.findall(r"\d+|\D+", version)
    return tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in parts)


def _text(sections: Mapping[str, bytes], name: str) -> str:
    return sections.get(name, b"").rstrip(b"\0").decode("utf-8", errors="replace").strip()


def uki_entry(file_name: str, sections: Mapping[str, bytes]) -> GrubEntry:
    """The menu entry of one UKI: "PRETTY_NAME (version)" from its .osrel and .uname."""
    if ".linux" not in sections:
        raise ComposerError(f"EFI/Linux/{file_name}: not a unified kernel image (no .linux)")
    osrel = _text(sections, ".osrel")
    stem = file_name.removesuffix(".efi")
    version = _text(sections, ".uname") or stem.partition("-")[2] or stem
    fields = osrelease.parse(osrel)
    pretty = fields.get("PRETTY_NAME") or fields.get("NAME") or "Linux"
    return GrubEntry(stem, f"{pretty} ({version})", f"/EFI/Linux/{file_name}", version)


def newest_first(entries: Sequence[GrubEntry]) -> list[GrubEntry]:
    return sorted(entries, key=lambda e: (version_key(e.version), e.id), reverse=True)


def grub_quote(value: str) -> str:
    """A GRUB script word: single quotes, with ' written as '\\''."""
    return "'" + str(value).replace("'", "'\\''") + "'"


def render_grub_cfg(entries: Sequence[GrubEntry], timeout: int) -> str:
    """grub.cfg text: serial + console terminals, one chainloader entry per UKI, newest default."""
    if not entries:
        raise ComposerError("grub.cfg: no UKI in ESP/EFI/Linux to make a menu entry for")
    ordered = newest_first(entries)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(DATA / "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["grub_quote"] = grub_quote
    template = env.get_template("grub.cfg.j2")
    return template.render(entries=ordered, default=ordered[0].id, timeout=int(timeout))


def esp_entries(esp: Path) -> list[GrubEntry]:
    """One entry per ``*.efi`` in ``esp/EFI/Linux``."""
    ukis = sorted((esp / "EFI/Linux").glob("*.efi"))
    return [uki_entry(p.name, file_sections(p)) for p in ukis]


def make_grub_image(tools_tree: Path, arch: Arch, workdir: Path) -> Path:
    """grub-mkimage (from the tools tree) of a standalone EFI GRUB with GRUB_MODULES built in."""
    platform = arch.grub
    if not (tools_tree / "usr/lib/grub" / platform).is_dir():
        raise HostError(f"no EFI GRUB for {arch.name} in the tools tree ({platform})")
    workdir.mkdir(parents=True, exist_ok=True)
    run_in(
        tools_tree,
        [
            "grub-mkimage",
            "--format",
            platform,
            "--directory",
            f"/usr/lib/grub/{platform}",
            "--prefix",
            PREFIX,
            # No shim here: the firmware's LoadImage checks the chainloaded UKI against db.
            # With shim_lock enabled, Debian's GRUB stops at the menu under Secure Boot.
            "--disable-shim-lock",
            "--output",
            f"{WORK}/grub{arch.efi}.efi",
            *GRUB_MODULES,
        ],
        binds=[(workdir, WORK)],
    )
    return workdir / f"grub{arch.efi}.efi"


def stage_grub(esp: Path, tools_tree: Path, arch: Arch, timeout: int, workdir: Path) -> list[Path]:
    """GRUB as the removable-media loader EFI/BOOT/BOOT<ARCH>.EFI plus its grub.cfg; the UKIs
    must already be in ``esp/EFI/Linux``. Returns the PE binaries it put on the ESP."""
    binary = make_grub_image(tools_tree, arch, workdir)
    boot_dir = esp / PREFIX.lstrip("/")
    boot_dir.mkdir(parents=True, exist_ok=True)
    loader = esp / removable_path(arch.efi)
    loader.write_bytes(binary.read_bytes())
    (boot_dir / "grub.cfg").write_text(render_grub_cfg(esp_entries(esp), timeout))
    return [loader]
