"""`dps-composer fixup --running`: gather facts on this system and apply a plan to it."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
from pathlib import Path

from composer.core import tools
from composer.core.errors import ComposerError, ToolError
from composer.core.files import atomic_write
from composer.fixup.actions import (
    Action,
    CopyFile,
    InstallSystemdBoot,
    SetType,
    SetUuid,
    WriteFile,
)
from composer.fixup.facts import Facts, Partition
from composer.spec import dps, osrelease
from composer.spec.arch import efi_suffix

ESP_PLACES = ("/efi", "/boot/efi", "/boot")
CMDLINE_FILES = ("/etc/kernel/cmdline", "/etc/default/grub")
SFDISK_IN_USE = ("--no-reread", "--no-tell-kernel")  # the disk holds the mounted /


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="surrogateescape")
    except (FileNotFoundError, NotADirectoryError):
        return None


def machine_id(text: str | None) -> str | None:
    mid = (text or "").strip()
    return mid if len(mid) == 32 and mid != "uninitialized" else None


def _root_source() -> str:
    src = tools.output(["findmnt", "-no", "SOURCE", "/"]).splitlines()[0].strip()
    return src.split("[", 1)[0]


def _lsblk(device: str) -> list[dict[str, str | None]]:
    cols = "PATH,PKNAME,TYPE,FSTYPE,UUID,LABEL,PARTLABEL"
    data = json.loads(tools.output(["lsblk", "-J", "-o", cols, device]))
    out: list[dict[str, str | None]] = []

    def walk(devs: list[dict[str, object]]) -> None:
        for d in devs:
            out.append(
                {k: (str(v) if v is not None else None) for k, v in d.items() if k != "children"}
            )
            walk(d.get("children", []))  # type: ignore[arg-type]

    walk(data["blockdevices"])
    return out


def _partitions(disk: str) -> tuple[str, tuple[Partition, ...]]:
    table = json.loads(tools.output(["sfdisk", "-J", disk]))["partitiontable"]
    fs = {d["path"]: d for d in _lsblk(disk)}
    parts = []
    for p in table.get("partitions", []):
        node = p["node"]
        info = fs.get(node, {})
        number = int(Path(f"/sys/class/block/{Path(node).name}/partition").read_text())
        parts.append(
            Partition(
                number=number,
                node=node,
                type_uuid=str(p.get("type", "")).lower(),
                uuid=str(p.get("uuid", "")).lower(),
                fstype=info.get("fstype") or "",
                fs_uuid=(info.get("uuid") or "").lower(),
                fs_label=info.get("label") or "",
                part_label=p.get("name", "") or info.get("partlabel") or "",
            )
        )
    return str(table.get("label", "")), tuple(parts)


def _esp_mount(parts: tuple[Partition, ...], stack: contextlib.ExitStack) -> str | None:
    """Where the ESP of the root disk is mounted; mounted at /efi (or /boot/efi, /boot) for the
    duration of the fixup when nothing mounted it."""
    esp = str(dps.by_designator("esp").uuid)
    esps = [p for p in parts if p.type_uuid == esp]
    nodes = {os.path.realpath(p.node) for p in esps}
    for place in ESP_PLACES:
        if not os.path.isdir(place):
            continue
        os.listdir(place)  # triggers an automount (systemd-gpt-auto mounts the ESP on access)
        try:  # an automount lists two sources: systemd-1 (autofs), then the ESP itself
            sources = tools.output(["findmnt", "-rno", "SOURCE", "--mountpoint", place])
        except ToolError:  # not a mount point
            continue
        if any(os.path.realpath(line.strip()) in nodes for line in sources.splitlines()):
            return place
    if not esps:
        return None
    first = min(esps, key=lambda p: p.number)
    for place in ESP_PLACES:
        if os.path.isdir(place) and not os.listdir(place):
            tools.run(["mount", first.node, place])
            stack.callback(tools.run, ["umount", place])
            return place
    return None


def _efi_files(esp: str | None) -> dict[str, str]:
    if esp is None:
        return {}
    found = {}
    for path in glob.glob(f"{esp}/[Ee][Ff][Ii]/**/*", recursive=True):
        if path.lower().endswith(".efi") and os.path.isfile(path):
            found[os.path.relpath(path, esp)] = sha256(Path(path))
    return found


def _cmdline_files(esp: str | None) -> dict[str, str]:
    paths = list(CMDLINE_FILES)
    for base in dict.fromkeys([esp, "/boot"]):
        if base:
            paths += sorted(glob.glob(f"{base}/loader/entries/*.conf"))
    seen, out = set(), {}
    for path in paths:
        real = os.path.realpath(path)
        text = read_text(Path(path))
        if text is not None and real not in seen:
            seen.add(real)
            out[path] = text
    return out


def gather(stack: contextlib.ExitStack) -> Facts:
    """Facts of the running system (needs root for sfdisk); what it mounts stays mounted
    until ``stack`` closes."""
    root = _root_source()
    dev = {d["path"]: d for d in _lsblk(root)}.get(root, {})
    label, parts, disk = "", tuple[Partition, ...](), dev.get("pkname") or ""
    if dev.get("type") == "part" and disk:
        disk = f"/dev/{dev['pkname']}"
        label, parts = _partitions(disk)
    arch = dps.native_arch()
    esp = _esp_mount(parts, stack)
    ukis = sorted(set(glob.glob("/usr/lib/modules/*/*.efi")))
    return Facts(
        disk=disk,
        label=label,
        partitions=parts,
        root=root,
        arch=arch,
        efi_arch=efi_suffix(arch),
        os_id=osrelease.os_id(read_text(Path("/etc/os-release"))),
        machine_id=machine_id(read_text(Path("/etc/machine-id"))),
        fstab=read_text(Path("/etc/fstab")),
        cmdline_files=_cmdline_files(esp),
        esp_mount=esp,
        esp_files=_efi_files(esp),
        ukis={u: sha256(Path(u)) for u in ukis},
        sdboot_available=shutil.which("bootctl") is not None
        and os.path.exists(f"/usr/lib/systemd/boot/efi/systemd-boot{efi_suffix(arch)}.efi"),
    )


def apply(facts: Facts, actions: tuple[Action, ...]) -> None:
    """Carry the actions out on this system, in order."""
    for a in actions:
        if isinstance(a, SetType):
            tools.run(["sfdisk", *SFDISK_IN_USE, "--part-type", facts.disk,
                       str(a.partition.number), a.new])  # fmt: skip
        elif isinstance(a, SetUuid):
            tools.run(["sfdisk", *SFDISK_IN_USE, "--part-uuid", facts.disk,
                       str(a.partition.number), a.new])  # fmt: skip
        elif isinstance(a, WriteFile):
            atomic_write(Path(a.path), a.new.encode(errors="surrogateescape"), mode=None)
        elif isinstance(a, CopyFile):
            Path(a.dst).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(Path(a.dst), Path(a.src).read_bytes(), mode=None)
        elif isinstance(a, InstallSystemdBoot):
            tools.run(["bootctl", "install", f"--esp-path={a.esp}"])
        else:  # pragma: no cover - the Action union is closed
            raise ComposerError(f"unknown fixup action {a!r}")
    os.sync()
