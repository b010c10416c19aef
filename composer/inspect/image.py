"""`dps-composer inspect`: what an existing disk image is, without booting it.

GPT and DPS types, attribute flags, file systems (by superblock), the ESP's EFI binaries (UKIs
with their sections, command line, os-release, signatures, predicted PCR 11), the root's
os-release, fstab and cloud-init, then whether systemd would auto-discover its root
(composer/inspect/discovery.py). Reads offline: mtools for vfat, debugfs for ext2/3/4, libguestfs only
for other root file systems.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from composer.core.errors import ComposerError, ToolError
from composer.image.formats import detect_format
from composer.image.gpt import read_gpt
from composer.image.probe import probe
from composer.image.raw import raw_view
from composer.image.read import list_vfat_tree, read_ext4_file, read_vfat_file
from composer.inspect.discovery import judge_discovery
from composer.inspect.report import Discovery, EfiBinary, PartitionInfo, Report
from composer.measure.pcr11 import PHASES, predict_pcr11, uki_sections
from composer.spec import dps, osrelease, pe
from composer.spec.arch import PE_MACHINES
from composer.toolchain import guestfs

ROOT_FILES = (
    "/usr/lib/os-release",
    "/etc/os-release",
    "/etc/fstab",
    "/etc/cloud/cloud.cfg",
    "/usr/bin/cloud-init",
)


def _partitions(raw: Path) -> tuple[str, list[PartitionInfo]]:
    disk_guid, entries = read_gpt(raw)
    parts = []
    with open(raw, "rb") as fh:
        for e in entries:
            known = dps.by_uuid(e.type_uuid)
            parts.append(
                PartitionInfo(
                    e.number,
                    e.start,
                    e.size,
                    e.type_uuid,
                    known.name if known else None,
                    known.designator if known else None,
                    known.arch if known else None,
                    e.uuid,
                    e.name,
                    e.attrs,
                    dps.flag_names(e.attrs),
                    probe(fh, e.start, e.size),
                )
            )
    return disk_guid, parts


def _text(data: bytes | None) -> str | None:
    return data.rstrip(b"\0").decode("utf-8", errors="replace").strip() if data else None


def efi_binary(path: str, data: bytes) -> EfiBinary:
    """Facts about one PE file from the ESP."""
    parsed = pe.parse(data)
    machine = PE_MACHINES.get(parsed.FILE_HEADER.Machine)
    sizes = {
        s.Name.rstrip(b"\0").decode("ascii", "replace"): s.Misc_VirtualSize for s in parsed.sections
    }
    secs = pe.sections(data)
    version = _text(secs.get(".sdmagic"))
    kind = "pe"
    if ".linux" in secs:
        kind = "uki"
    elif version and "systemd-boot" in version:
        kind = "systemd-boot"
    elif "mods" in sizes or b"GNU GRUB" in data:
        kind = "grub"
    binary = EfiBinary(
        path=path,
        size=len(data),
        kind=kind,
        machine=machine,
        sections=sizes,
        signed_by=[s.subjects[0] if s.subjects else "?" for s in pe.signatures(data)],
        version=version.strip("# ").removeprefix("LoaderInfo: ") if version else None,
    )
    if kind == "uki":
        binary.cmdline = _text(secs.get(".cmdline"))
        osrel = osrelease.parse(_text(secs.get(".osrel")) or "")
        binary.pretty_name = osrel.get("PRETTY_NAME") or osrel.get("NAME")
        binary.uname = _text(secs.get(".uname"))
        with contextlib.suppress(ValueError):
            binary.pcr11 = predict_pcr11(_uki_sections(data))["sha256"][PHASES[-1]]
    return binary


def _uki_sections(data: bytes) -> dict[str, bytes]:
    from composer.core.workdir import scratch_dir, work_parent

    with scratch_dir("uki", work_parent()) as tmp:
        (tmp / "uki.efi").write_bytes(data)
        return uki_sections(tmp / "uki.efi")


def _read_esp(raw: Path, esp: PartitionInfo, report: Report) -> None:
    files = list_vfat_tree(raw, esp.start)
    report.esp_files = files
    for path in files:
        if path.lower().endswith(".efi"):
            try:
                report.efi.append(efi_binary(path, read_vfat_file(raw, esp.start, path)))
            except Exception as err:  # a broken PE is a finding, not a crash
                report.efi.append(EfiBinary(path, 0, f"unreadable ({err})", None, {}, []))


def _read_root(raw: Path, root: PartitionInfo, report: Report) -> None:
    fs = root.filesystem.type if root.filesystem else None
    found: dict[str, bytes | None] = {}
    if fs in ("ext2", "ext3", "ext4"):
        report.root_read = f"debugfs ({fs})"
        for path in ROOT_FILES:
            try:
                found[path] = read_ext4_file(raw, root.start, path)
            except (FileNotFoundError, ToolError):
                found[path] = None
    elif fs in ("xfs", "btrfs", "vfat", "erofs", "squashfs"):
        report.root_read = f"libguestfs ({fs})"
        try:
            found = guestfs.read_files(raw, root.number, ROOT_FILES)
        except ComposerError as err:
            report.root_read = f"not read: {err}"
            return
    else:
        report.root_read = f"not read: file system {fs or 'unknown'}"
        return
    osrel = found.get("/usr/lib/os-release") or found.get("/etc/os-release")
    report.os_release = osrelease.parse(_text(osrel) or "")
    report.fstab = [
        ln.strip()
        for ln in (_text(found.get("/etc/fstab")) or "").splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    report.cloud_init = bool(found.get("/etc/cloud/cloud.cfg") or found.get("/usr/bin/cloud-init"))


def inspect_image(image: Path, arch: str | None = None) -> Report:
    """Everything `inspect` reports; ``arch`` (DPS token or alias) defaults to the EFI binaries'."""
    if not image.is_file():
        raise ComposerError(f"{image}: no such image file")
    report = Report(str(image), detect_format(image))
    with raw_view(image) as raw:
        try:
            report.disk_guid, report.partitions = _partitions(raw)
        except (ToolError, ValueError) as err:
            report.discovery = Discovery(False, None, [f"no GPT partition table: {err}"], [])
            return report
        esps = report.partition("esp")
        unreadable = ""
        if esps:
            try:
                _read_esp(raw, esps[0], report)
            except ToolError as err:  # the image's ESP, not the host, is at fault
                unreadable = f"ESP (partition {esps[0].number}) unreadable: {err.stderr_tail}"
        target = dps.resolve_arch(arch) if arch else _arch_of(report)
        report.discovery = judge_discovery(report, target)
        if report.discovery.root is not None:
            root = next(p for p in report.partitions if p.number == report.discovery.root)
            _read_root(raw, root, report)
            report.discovery = judge_discovery(report, target)
        if unreadable:
            report.discovery.problems.append(unreadable)
            report.discovery.ok = False
    return report


def _arch_of(report: Report) -> str:
    """The architecture the image is for: its EFI binaries', else its root type's, else ours."""
    for b in report.efi:
        if b.machine:
            return b.machine
    for p in report.partitions:
        if p.designator == "root" and p.arch:
            return p.arch
    return dps.native_arch()
