"""Would systemd auto-discover this image's root? A pure judgement of an inspection report
against the Discoverable Partitions Specification ("the first partition with this type UUID
on the disk containing the active EFI ESP") and systemd's rules (systemd-gpt-auto-generator(8)):

- the disk needs an ESP (the boot loader or systemd-stub reports it as LoaderDevicePartUUID,
  which is how systemd-gpt-auto-generator knows the disk to search);
- the root is the first partition of type root-<arch> without the no-auto flag;
- `root=` on the kernel command line and an /etc/fstab entry for / take precedence: then the
  root is configured, not discovered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from composer.inspect.report import Discovery, PartitionInfo, Report
from composer.spec import dps
from composer.spec.arch import efi_suffix, removable_path

NO_AUTO = 1 << 63
READ_ONLY = 1 << 60
_ROOT_ARG = re.compile(r"(?:^|\s)root=(\S+)")


def _name(p: PartitionInfo) -> str:
    label = f" '{p.label}'" if p.label else ""
    return f"partition {p.number}{label}"


def _pick_root(
    parts: Sequence[PartitionInfo], arch: str, problems: list[str], warnings: list[str]
) -> PartitionInfo | None:
    wanted = dps.by_designator("root", arch)
    roots = [p for p in parts if p.type_uuid == str(wanted.uuid)]
    usable = [p for p in roots if not p.attrs & NO_AUTO]
    if not roots:
        others = [p for p in parts if p.designator == "root"]
        generic = [p for p in parts if p.type_name == "linux-generic"]
        msg = f"no {wanted.name} partition ({wanted.uuid})"
        if others:
            msg += "; " + ", ".join(f"{_name(p)} is {p.type_name}" for p in others)
            msg += " (another architecture)"
        if generic:
            msg += "; " + ", ".join(
                f"{_name(p)} has type linux-generic ({p.type_uuid}), which is never auto-mounted"
                for p in generic
            )
            msg += f": set the root's type to {wanted.name}"
        problems.append(msg)
        return None
    if not usable:
        problems.append(
            f"{_name(roots[0])} ({wanted.name}) carries the no-auto flag (bit 63): systemd skips it"
        )
        return None
    first = usable[0]
    skipped = [p for p in roots if p.attrs & NO_AUTO and p.number < first.number]
    for p in skipped:
        warnings.append(f"{_name(p)} has no-auto; {_name(first)} is the root instead")
    if len(usable) > 1:
        rest = ", ".join(str(p.number) for p in usable[1:])
        warnings.append(
            f"several {wanted.name} partitions without no-auto: {_name(first)} is mounted "
            f"(the first; partition(s) {rest} are not, unless a label compares higher as a "
            "version)"
        )
    if first.filesystem is None:
        problems.append(f"{_name(first)} ({wanted.name}) has no file system the probe recognises")
    if first.attrs & READ_ONLY:
        warnings.append(f"{_name(first)} has the read-only flag: / is mounted read-only")
    warnings += [f"{_name(first)}: {w}" for w in dps.check_flags("root", first.attrs)]
    return first


def _esp_checks(report: Report, arch: str, problems: list[str], warnings: list[str]) -> None:
    esps = report.partition("esp")
    if not esps:
        problems.append(
            "no EFI System Partition (c12a7328-f81f-11d2-ba4b-00a0c93ec93b): nothing tells "
            "systemd which disk it booted from (LoaderDevicePartUUID), so no root is searched"
        )
        return
    if len(esps) > 1:
        warnings.append(f"{len(esps)} ESPs on one disk: firmware and loaders may disagree")
    esp = esps[0]
    if esp.filesystem is None or esp.filesystem.type != "vfat":
        found = esp.filesystem.type if esp.filesystem else "none"
        problems.append(f"the ESP ({_name(esp)}) has no FAT file system (found: {found})")
        return
    removable = "/" + removable_path(efi_suffix(arch))
    if not any(f.upper() == removable.upper() for f in report.esp_files):
        warnings.append(
            f"no {removable} on the ESP: firmware without a Boot#### entry for it finds "
            "nothing to start"
        )
    kinds = {b.kind for b in report.efi}
    if not kinds & {"uki", "systemd-boot"}:
        warnings.append(
            "no systemd-boot and no UKI (systemd-stub) on the ESP: root discovery then needs "
            "a boot loader that sets LoaderDevicePartUUID (GRUB >= 2.12 with its bli module)"
        )


def judge_discovery(report: Report, arch: str) -> Discovery:
    """The verdict on ``report`` for an image of architecture ``arch`` (DPS token)."""
    problems: list[str] = []
    warnings: list[str] = []
    _esp_checks(report, arch, problems, warnings)
    root = _pick_root(report.partitions, arch, problems, warnings)
    for b in report.efi:
        if b.kind == "uki" and b.cmdline:
            found = _ROOT_ARG.search(b.cmdline)
            if found:
                problems.append(
                    f"the UKI {b.path} has root={found.group(1)} on its command line: "
                    "the root is configured there, not discovered"
                )
    for line in report.fstab:
        fields = line.split()
        if len(fields) > 1 and fields[1] == "/":
            problems.append(f"/etc/fstab mounts / ({line}): the root is configured, not discovered")
    read = report.root_read or ""
    if root is not None and read.startswith("debugfs") and not report.os_release:
        warnings.append(f"{_name(root)} has no os-release: is it an OS root file system?")
    return Discovery(not problems, root.number if root else None, problems, warnings)
