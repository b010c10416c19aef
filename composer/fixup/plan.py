"""Facts -> the changes that make a system DPS- and UKI-ready. Pure: no I/O.

Rules (the Discoverable Partitions Specification, uapi-group/specifications
specs/discoverable_partitions_specification.md): root, /usr, /home, /srv, /var, /var/tmp and swap partitions on
the disk holding / are found by their type when each is the first of its type there; /var only
when its partition UUID is the machine-id HMAC. An fstab line is dropped only when discovery
mounts the same partition with the same effect; root= only when / will be discovered (GPT, a
plain partition, an ESP on that disk, a boot chain that reports LoaderDevicePartUUID).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from composer.fixup import edits
from composer.fixup.actions import (
    Action,
    CopyFile,
    FixupPlan,
    InstallSystemdBoot,
    SetType,
    SetUuid,
    WriteFile,
)
from composer.fixup.facts import Facts, Partition
from composer.spec import dps
from composer.spec.arch import removable_path

# mount point -> designator found there by systemd-gpt-auto-generator
DISCOVERED = {"/": "root", "/usr": "usr", "/home": "home", "/srv": "srv", "/var": "var",
              "/var/tmp": "tmp", "/efi": "esp"}  # fmt: skip
_SPEC_KEYS = {"UUID": "fs_uuid", "PARTUUID": "uuid", "LABEL": "fs_label", "PARTLABEL": "part_label"}
_BY_DIR = {"by-uuid": "fs_uuid", "by-partuuid": "uuid", "by-label": "fs_label",
           "by-partlabel": "part_label"}  # fmt: skip


@dataclass
class _Work:
    facts: Facts
    types: dict[int, str]  # partition number -> type UUID after the plan
    uuids: dict[int, str]
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def first_of_type(self, part: Partition) -> bool:
        want = self.types[part.number]
        return min(n for n, t in self.types.items() if t == want) == part.number


def resolve_spec(spec: str, parts: tuple[Partition, ...]) -> Partition | None:
    """The partition an fstab/cmdline device spec (UUID=, PARTUUID=, LABEL=, /dev/…) names."""
    key, _, value = spec.partition("=")
    attr = _SPEC_KEYS.get(key) if value else None
    if attr is None and spec.startswith("/dev/disk/by-"):
        attr, value = _BY_DIR.get(PurePosixPath(spec).parent.name), PurePosixPath(spec).name
    value = edits.fstab_unescape(value.strip('"'))
    for p in parts:
        if attr is None and p.node == spec:
            return p
        if attr is not None:
            have = getattr(p, attr)
            same = have.lower() == value.lower() if attr in ("uuid", "fs_uuid") else have == value
            if have and same:
                return p
    return None


def designator_for(target: str, fstype: str, esp_has_xbootldr: bool = False) -> str | None:
    if fstype == "swap":
        return "swap"
    if target == "/boot" and fstype == "vfat":
        return "esp" if not esp_has_xbootldr else "xbootldr"
    return DISCOVERED.get(target.rstrip("/") or "/")


def _want_type(w: _Work, part: Partition, designator: str, why: str) -> bool:
    """Plan the DPS type; False when another partition of that type comes first."""
    want = str(dps.by_designator(designator, w.facts.arch).uuid)
    clash = [n for n, t in w.types.items() if t == want and n < part.number]
    if clash:
        w.problems.append(
            f"{part.node} ({why}): partition {clash[0]} already has type {designator} and "
            "comes first, so discovery would pick that one"
        )
        return False
    if part.type_uuid != want:
        w.actions.append(SetType(part, want, why))
        w.types[part.number] = want
    else:
        w.notes.append(f"{part.node} ({why}) has type {dps.by_uuid(want).name}")  # type: ignore[union-attr]
    return True


def _root(w: _Work) -> bool:
    f = w.facts
    part = f.partition(f.root)
    if part is None:
        w.problems.append(f"/ is on {f.root or 'an unknown device'}, not a partition of a disk")
        return False
    if f.label != "gpt":
        w.problems.append(f"{f.disk} has a {f.label or 'unknown'} partition table, not GPT")
        return False
    if not _want_type(w, part, "root", "/"):
        return False
    esp = str(dps.by_designator("esp").uuid)
    if esp not in w.types.values():
        w.problems.append(f"{f.disk} has no ESP: discovery looks for / on the ESP's disk")
        return False
    return True


def _entry(w: _Work, idx: int, fields: list[str], root_ok: bool, drop: list[int]) -> None:
    f = w.facts
    spec, target = fields[0], edits.fstab_unescape(fields[1])
    fstype = fields[2] if len(fields) > 2 else ""
    options = fields[3] if len(fields) > 3 else "defaults"
    part = resolve_spec(spec, f.partitions)
    if target == "/":
        part = part or f.partition(f.root)
    has_xbootldr = str(dps.by_designator("xbootldr").uuid) in w.types.values()
    d = designator_for(target, fstype, has_xbootldr)
    if part is None or d is None:
        if target == "/boot/efi" and part is not None and part.fstype == "vfat":
            _want_type(w, part, "esp", target)  # the ESP where Fedora mounts it: keep the line
        return
    if d != "root" and not _want_type(w, part, d, target):
        return
    line = f"fstab line for {target}"
    if d == "root" and not root_ok:
        return
    if not edits.options_reproducible(options):
        w.problems.append(f"{line} kept: options {options!r} would be lost without it")
        return
    if not w.first_of_type(part):
        return
    if d == "var":
        want = _var_uuid(w, part)
        if want is None:
            return
        if part.uuid.lower() != want:
            w.actions.append(SetUuid(part, want, "/var is mounted only with the machine's UUID"))
            w.uuids[part.number] = want
    drop.append(idx)


def _var_uuid(w: _Work, part: Partition) -> str | None:
    mid = w.facts.machine_id
    if not mid or not re.fullmatch(r"[0-9a-fA-F]{32}", mid) or int(mid, 16) == 0:
        w.problems.append(
            f"fstab line for /var kept: no machine-id yet, so {part.node} cannot get the "
            "partition UUID discovery wants (run fixup again after the first boot)"
        )
        return None
    return str(dps.var_partition_uuid(mid))


def _fstab(w: _Work, root_ok: bool) -> None:
    f = w.facts
    if f.fstab is None:
        return
    drop: list[int] = []
    for idx, fields in edits.fstab_entries(f.fstab):
        if len(fields) >= 2:
            _entry(w, idx, fields, root_ok, drop)
    if drop:
        lines = f.fstab.splitlines()
        targets = ", ".join(edits.fstab_unescape(lines[i].split()[1]) for i in drop)
        why = f"drop the lines for {targets}: found by partition type"
        w.actions.append(WriteFile("/etc/fstab", f.fstab, edits.comment_out(f.fstab, drop), why))


def _cmdlines(w: _Work) -> None:
    for path, text in sorted(w.facts.cmdline_files.items()):
        new = edits.edit_cmdline_file(path, text)
        if new != text:
            gone = sorted(set(edits.root_args(text)) - set(edits.root_args(new)))
            w.actions.append(WriteFile(path, text, new, f"drop {' '.join(gone)}"))


def _newest(paths: list[str]) -> str:
    def key(p: str) -> list[tuple[int, int | str]]:
        return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", p)]

    return max(paths, key=key)


def _esp_ukis(f: Facts) -> list[str]:
    return [
        p for p in f.esp_files if p.lower().startswith("efi/linux/") and p.lower().endswith(".efi")
    ]


def _uki_on_esp(w: _Work) -> tuple[str, str] | None:
    """(path relative to the ESP, sha256) of the UKI the ESP boots; the system's newest UKI is
    copied there when the ESP has none."""
    f = w.facts
    on_esp = _esp_ukis(f)
    if on_esp:
        rel = _newest(on_esp)
        return rel, f.esp_files[rel]
    if not f.ukis or f.esp_mount is None:
        w.problems.append("no UKI on the ESP and none in /usr/lib/modules to put there")
        return None
    src = _newest(list(f.ukis))
    rel = f"EFI/Linux/{f.os_id}-{PurePosixPath(src).parent.name}.efi"
    w.actions.append(CopyFile(src, f"{f.esp_mount}/{rel}", "BLS Type #2 entry for the UKI"))
    return rel, f.ukis[src]


def _systemd_boot(w: _Work, installed: bool) -> bool:
    f = w.facts
    if installed:
        w.notes.append("systemd-boot is installed")
    elif f.sdboot_available and f.esp_mount is not None:
        w.actions.append(InstallSystemdBoot(f.esp_mount))
    else:
        w.problems.append(
            "systemd-boot is not installed and its EFI binary is missing "
            "(install systemd-boot or systemd-boot-unsigned)"
        )
        return False
    return True


def _uki_direct(w: _Work, uki: tuple[str, str]) -> None:
    f = w.facts
    fallback = removable_path(f.efi_arch)
    have = {p.lower(): (p, h) for p, h in f.esp_files.items()}
    current = have.get(fallback.lower())
    if current is not None and current[1] == uki[1]:
        w.notes.append(f"{current[0]} is the UKI: the firmware starts it directly")
        return
    dst = current[0] if current else fallback
    w.actions.append(
        CopyFile(f"{f.esp_mount}/{uki[0]}", f"{f.esp_mount}/{dst}", "the firmware starts the UKI")
    )


def _loader(w: _Work, loader: str) -> bool:
    """Boot chain work; True when it reports LoaderDevicePartUUID (systemd-boot or a UKI)."""
    f = w.facts
    lower = {p.lower() for p in f.esp_files}
    sdboot = f"efi/systemd/systemd-boot{f.efi_arch}.efi" in lower
    if loader == "keep":
        if sdboot or _esp_ukis(f):
            w.notes.append("boot chain kept: " + ("systemd-boot" if sdboot else "a UKI"))
            return True
        w.problems.append("root= kept: the boot chain has neither systemd-boot nor a UKI")
        return False
    if f.esp_mount is None:
        w.problems.append(f"no ESP mounted: cannot set up {loader}")
        return False
    uki = _uki_on_esp(w)
    if loader == "systemd-boot":
        return _systemd_boot(w, sdboot)
    if uki is not None and loader == "uki-direct":
        _uki_direct(w, uki)
    return uki is not None


def plan_fixup(facts: Facts, loader: str = "keep") -> FixupPlan:
    """Everything that makes ``facts`` DPS- and UKI-ready; empty when it already is."""
    w = _Work(facts, {p.number: p.type_uuid.lower() for p in facts.partitions},
              {p.number: p.uuid.lower() for p in facts.partitions})  # fmt: skip
    root_ok = _root(w)
    chain_ok = _loader(w, loader) if root_ok else False
    root_ok = root_ok and chain_ok
    _fstab(w, root_ok)
    if root_ok:
        _cmdlines(w)
    return FixupPlan(tuple(w.actions), tuple(w.notes), tuple(w.problems), root_ok)
