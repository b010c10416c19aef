"""Pick UEFI firmware from QEMU firmware descriptors (docs/interop/firmware.json).

Search order and override rules follow QEMU's spec: the union of the descriptor directories,
sorted by file name; a same-named file in a later (more specific) directory overrides an earlier
one and an empty file hides it. The first descriptor that matches wins. Every descriptor that
was passed over is kept as a ``Rejection`` so the error (and tests) can say why.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from composer.core.errors import HostError
from composer.spec.arch import Arch

# Bare machine aliases and the versioned family their globs are written for.
MACHINE_FAMILIES = {"q35": "pc-q35", "pc": "pc-i440fx"}
_VERSIONED = re.compile(r"-\d+\.\d+$")  # pc-q35-7.2, virt-8.0


@dataclass(frozen=True)
class Firmware:
    descriptor: Path
    description: str
    arch: str  # QEMU architecture (qemu-system-<arch>)
    machine: str  # the machine type it was selected for, e.g. q35
    code: Path
    code_format: str
    vars_template: Path
    vars_format: str
    features: frozenset[str]
    requires_smm: bool

    @property
    def secure_boot(self) -> bool:
        return "secure-boot" in self.features


@dataclass(frozen=True)
class Rejection:
    descriptor: Path
    code: str  # stable token for tests/logs: hidden, invalid, not-uefi, no-target, ...
    reason: str


class FirmwareNotFound(HostError):
    def __init__(self, wanted: str, rejections: list[Rejection]) -> None:
        self.rejections = rejections
        lines = [f"no UEFI firmware descriptor matches {wanted}"]
        if not rejections:
            lines.append("  (no descriptor files found; install ovmf / qemu-efi-aarch64)")
        lines += [f"  {r.descriptor}: {r.reason}" for r in rejections]
        super().__init__("\n".join(lines))


def default_dirs() -> list[Path]:
    """Descriptor directories from least to most specific (later overrides earlier)."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [
        Path("/usr/share/qemu/firmware"),
        Path("/etc/qemu/firmware"),
        Path(xdg) / "qemu" / "firmware",
    ]


def list_descriptors(dirs: Sequence[Path]) -> tuple[list[Path], list[Rejection]]:
    """Union of *.json by file name (later dir wins), sorted by name; empty files hide."""
    by_name: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.name.endswith(".json") and not p.is_dir():
                by_name[p.name] = p
    chosen: list[Path] = []
    hidden: list[Rejection] = []
    for name in sorted(by_name):
        path = by_name[name]
        if path.stat().st_size == 0:
            hidden.append(Rejection(path, "hidden", f"empty file hides every {name}"))
        else:
            chosen.append(path)
    return chosen, hidden


def machine_matches(machine: str, globs: Sequence[str]) -> bool:
    """fnmatch the machine against the globs; a bare alias (q35, virt) matches its family."""
    family = MACHINE_FAMILIES.get(machine, machine)
    bare = _VERSIONED.search(machine) is None
    for g in globs:
        if fnmatchcase(machine, g):
            return True
        if bare and (g == family or g.startswith(family + "-")):
            return True
    return False


def _target_ok(data: dict[str, Any], arch: str, machine: str) -> str | None:
    targets = data.get("targets") or []
    arches = [str(t.get("architecture")) for t in targets if isinstance(t, dict)]
    same = [t for t in targets if isinstance(t, dict) and t.get("architecture") == arch]
    if not same:
        return f"architecture {arch} not among targets {arches}"
    if not any(machine_matches(machine, t.get("machines") or []) for t in same):
        globs = [g for t in same for g in t.get("machines") or []]
        return f"machine {machine} matches none of {globs}"
    return None


def rerooted(filename: str, root: Path | None) -> Path:
    """A descriptor's absolute file name, inside ``root`` when the descriptor came from a tree
    (composer/toolchain/boottools.py) rather than the host."""
    path = Path(filename)
    return path if root is None else root / path.relative_to(path.anchor)


def _mapping_ok(mapping: dict[str, Any], root: Path | None = None) -> tuple[str, str] | None:
    if mapping.get("device") != "flash":
        return "not-flash", f"mapping device is {mapping.get('device')!r}, not flash"
    mode = mapping.get("mode", "split")
    if mode != "split":
        return "not-split", f"flash mode is {mode!r}, need split (separate varstore)"
    for key in ("executable", "nvram-template"):
        entry = mapping.get(key)
        if not isinstance(entry, dict) or not entry.get("filename"):
            return f"no-{key}", f"flash mapping has no {key}"
        if not rerooted(entry["filename"], root).exists():
            return "missing-file", f"{key} {entry['filename']} does not exist"
    return None


def _features_ok(
    features: frozenset[str], secure_boot: bool, enrolled_keys: bool | None
) -> tuple[str, str] | None:
    if secure_boot and "secure-boot" not in features:
        return "no-secure-boot", "Secure Boot wanted but feature secure-boot missing"
    if not secure_boot and "secure-boot" in features:
        return "secure-boot-unwanted", "has feature secure-boot but Secure Boot not wanted"
    if enrolled_keys is True and "enrolled-keys" not in features:
        return "no-enrolled-keys", "enrolled keys wanted but feature enrolled-keys missing"
    if enrolled_keys is False and "enrolled-keys" in features:
        return "enrolled-keys-unwanted", "has feature enrolled-keys but an empty varstore wanted"
    return None


def evaluate(
    path: Path,
    arch: str,
    machine: str,
    secure_boot: bool,
    enrolled_keys: bool | None,
    root: Path | None = None,
) -> Firmware | Rejection:
    """Match one descriptor file against the criteria (its file names inside ``root``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return Rejection(path, "invalid", f"cannot read descriptor: {err}")
    if not isinstance(data, dict):
        return Rejection(path, "invalid", "descriptor is not a JSON object")
    if "uefi" not in (data.get("interface-types") or []):
        return Rejection(path, "not-uefi", f"interface-types {data.get('interface-types')}")
    why = _target_ok(data, arch, machine)
    if why:
        return Rejection(path, "no-target", why)
    mapping = data.get("mapping") or {}
    bad = (
        _mapping_ok(mapping, root) if isinstance(mapping, dict) else ("invalid", "mapping invalid")
    )
    if bad:
        return Rejection(path, *bad)
    features = frozenset(str(f) for f in data.get("features") or [])
    bad = _features_ok(features, secure_boot, enrolled_keys)
    if bad:
        return Rejection(path, *bad)
    exe, tmpl = mapping["executable"], mapping["nvram-template"]
    return Firmware(
        descriptor=path,
        description=str(data.get("description", "")),
        arch=arch,
        machine=machine,
        code=rerooted(exe["filename"], root),
        code_format=str(exe.get("format", "raw")),
        vars_template=rerooted(tmpl["filename"], root),
        vars_format=str(tmpl.get("format", "raw")),
        features=features,
        requires_smm="requires-smm" in features,
    )


def find_firmware(
    arch: Arch,
    machine: str,
    secure_boot: bool,
    enrolled_keys: bool | None = None,
    dirs: Sequence[Path] | None = None,
    root: Path | None = None,
) -> tuple[Firmware | None, list[Rejection]]:
    """First matching descriptor (or None) and the reasons for every one skipped before it.
    ``root``: the tree that ``dirs`` and the descriptors' file names belong to."""
    paths, rejections = list_descriptors(default_dirs() if dirs is None else dirs)
    for path in paths:
        result = evaluate(path, arch.qemu, machine, secure_boot, enrolled_keys, root)
        if isinstance(result, Firmware):
            return result, rejections
        rejections.append(result)
    return None, rejections


def select_firmware(
    arch: Arch,
    machine: str,
    secure_boot: bool,
    enrolled_keys: bool | None = None,
    dirs: Sequence[Path] | None = None,
    root: Path | None = None,
) -> Firmware:
    """The firmware to boot with; FirmwareNotFound lists every descriptor and why it was skipped."""
    fw, rejections = find_firmware(arch, machine, secure_boot, enrolled_keys, dirs, root)
    if fw is None:
        keys = {None: "", True: ", enrolled keys", False: ", empty varstore"}[enrolled_keys]
        sb = "with" if secure_boot else "without"
        wanted = f"{arch.qemu} {machine} {sb} Secure Boot{keys}"
        raise FirmwareNotFound(wanted, rejections)
    return fw
