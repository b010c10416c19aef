"""Write and read GPT partition tables on image files with sfdisk (util-linux).

Why not pyparted: libparted has no way to set a partition's unique GUID or the disk GUID
(any version), and the 3.5 of Debian 12 cannot set type GUIDs at all. sfdisk sets all of
them, works on a plain file, needs no root and no loop device.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from composer.core import tools

SECTOR = 512


@dataclass(frozen=True)
class GptEntry:
    number: int
    start: int  # bytes
    size: int  # bytes
    type_uuid: str
    uuid: str
    name: str
    attrs: int = 0  # GPT attribute bits


def _attrs(bits: int) -> str:
    names = {0: "RequiredPartition", 1: "NoBlockIOProtocol", 2: "LegacyBIOSBootable"}
    words = [names[b] for b in sorted(names) if bits >> b & 1]
    guid_bits = [str(b) for b in range(48, 64) if bits >> b & 1]
    if guid_bits:
        words.append("GUID:" + ",".join(guid_bits))
    return " ".join(words)


def sfdisk_script(disk_guid: str, entries: Sequence[GptEntry]) -> str:
    lines = [
        "label: gpt",
        f"label-id: {disk_guid.upper()}",
        "unit: sectors",
        "sector-size: 512",
        "",
    ]
    for e in entries:
        if e.start % SECTOR or e.size % SECTOR:
            raise ValueError(f"partition {e.number} is not sector aligned")
        fields = [
            f"start={e.start // SECTOR}",
            f"size={e.size // SECTOR}",
            f"type={e.type_uuid.upper()}",
            f"uuid={e.uuid.upper()}",
            f'name="{e.name}"',
        ]
        if e.attrs:
            fields.append(f'attrs="{_attrs(e.attrs)}"')
        lines.append(", ".join(fields))
    return "\n".join(lines) + "\n"


def write_gpt(image: Path, disk_guid: str, entries: Sequence[GptEntry]) -> None:
    """Write a fresh GPT (primary, backup, protective MBR) onto an existing image file."""
    script = sfdisk_script(disk_guid, entries)
    tools.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--wipe=never", str(image)],
        input=script.encode(),
    )


def read_gpt(image: Path) -> tuple[str, list[GptEntry]]:
    """The disk GUID and partitions of an image, as sfdisk reads them back."""
    data = json.loads(tools.output(["sfdisk", "--json", str(image)]))["partitiontable"]
    if data.get("label") != "gpt":
        raise ValueError(f"{image}: not a GPT disk (label {data.get('label')!r})")
    sector = int(data.get("sectorsize", SECTOR))
    entries = []
    for i, p in enumerate(data.get("partitions", []), start=1):
        entries.append(
            GptEntry(
                number=_number(str(p.get("node", "")), str(image), i),
                start=int(p["start"]) * sector,
                size=int(p["size"]) * sector,
                type_uuid=str(p["type"]).lower(),
                uuid=str(p.get("uuid", "")).lower(),
                name=str(p.get("name", "")),
                attrs=_parse_attrs(str(p.get("attrs", ""))),
            )
        )
    return str(data["id"]).lower(), entries


def _number(node: str, image: str, default: int) -> int:
    # sfdisk names partition N of FILE "FILEN", or "FILEpN" when FILE ends in a digit.
    suffix = node[len(image) :].lstrip("p") if node.startswith(image) else ""
    return int(suffix) if suffix.isdigit() else default


def _parse_attrs(text: str) -> int:
    bits = 0
    names = {"RequiredPartition": 0, "NoBlockIOProtocol": 1, "LegacyBIOSBootable": 2}
    for word in text.replace(",", " ").split():
        if word in names:
            bits |= 1 << names[word]
        elif word.startswith("GUID:"):
            for b in word[5:].split(","):
                if b:
                    bits |= 1 << int(b)
        elif word.isdigit():
            bits |= 1 << int(word)
    return bits
