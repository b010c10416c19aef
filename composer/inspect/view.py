"""The human-readable form of an inspection report (`dps-composer inspect IMAGE`)."""

from __future__ import annotations

from composer.core.units import human_size
from composer.inspect.report import Report


def _partition_lines(report: Report) -> list[str]:
    lines = [f"GPT disk {report.disk_guid}, {len(report.partitions)} partition(s):"]
    for p in report.partitions:
        kind = p.type_name or f"unknown type {p.type_uuid}"
        fs = p.filesystem
        fs_text = f"{fs.type}" + (f" '{fs.label}'" if fs and fs.label else "") if fs else "no fs"
        flags = f" flags: {', '.join(p.flags)}" if p.flags else ""
        label = f" '{p.label}'" if p.label else ""
        lines.append(
            f"  {p.number}: {kind:<16} {human_size(p.size):>10}  {fs_text}{label}"
            f"  uuid {p.uuid}{flags}"
        )
    return lines


def _efi_lines(report: Report) -> list[str]:
    if not report.efi:
        return ["ESP: no EFI binaries"] if report.partition("esp") else []
    lines = ["EFI binaries on the ESP:"]
    for b in report.efi:
        signed = f"signed by {'; '.join(b.signed_by)}" if b.signed_by else "unsigned"
        what = b.version or b.kind
        lines.append(f"  {b.path}: {b.kind} ({what}), {human_size(b.size)}, {signed}")
        if b.kind == "uki":
            lines.append(f"    {b.pretty_name or '?'} kernel {b.uname or '?'}")
            lines.append(f"    cmdline: {b.cmdline or '(none)'}")
            lines.append(f"    sections: {' '.join(b.sections)}")
            if b.pcr11:
                lines.append(f"    predicted PCR 11 (booted): {b.pcr11}")
    return lines


def render(report: Report) -> list[str]:
    lines = [f"{report.image} ({report.format})"]
    if report.partitions:
        lines += _partition_lines(report)
    lines += _efi_lines(report)
    if report.root_read:
        os_name = report.os_release.get("PRETTY_NAME") or report.os_release.get("ID")
        lines.append(
            f"root file system: {os_name or 'no os-release'} (read with {report.root_read})"
        )
        lines.append(f"  fstab entries: {len(report.fstab)}; cloud-init: {report.cloud_init}")
    d = report.discovery
    if d is not None:
        if d.ok:
            lines.append(f"root auto-discovery: yes, partition {d.root} is mounted as /")
        else:
            lines.append("root auto-discovery: NO")
        lines += [f"  problem: {p}" for p in d.problems]
        lines += [f"  warning: {w}" for w in d.warnings]
    return lines
