"""The partition map drawn to scale as SVG: `inspect --svg` and the boot report.

One bar is the whole disk; each partition is a box at its offset, as wide as its share of the
disk (at least a few pixels, so a 1 MiB partition stays visible), labelled below with its
number, DPS type, file system, size and DPS flags. Gaps are left blank. Text is escaped: a
GPT label is the image's data, not markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from composer.core.units import human_size
from composer.inspect.report import Report

WIDTH = 960
BAR_Y, BAR_H = 28, 44
LABEL_LINE = 16
MIN_BOX = 6  # pixels: a partition never vanishes
# fill colours by DPS designator; others grey
COLOURS = {
    "esp": "#f2c14e",
    "xbootldr": "#f5d98b",
    "root": "#5b8def",
    "usr": "#7fb3d5",
    "home": "#76c893",
    "srv": "#99d98c",
    "var": "#b5e48c",
    "tmp": "#d9ed92",
    "swap": "#e76f51",
    "root-verity": "#9d4edd",
    "usr-verity": "#c77dff",
}


@dataclass(frozen=True)
class MapPartition:
    number: int
    offset: int  # bytes
    size: int
    type_name: str  # DPS type name, or the type GUID
    designator: str
    label: str
    filesystem: str
    flags: tuple[str, ...]


def from_inspect(report: Report) -> tuple[int, list[MapPartition]]:
    """(disk size, partitions) of an inspected image (the disk ends after the last partition
    when the GPT's own size is not known: the backup GPT's 33 sectors)."""
    parts = [
        MapPartition(
            p.number,
            p.start,
            p.size,
            p.type_name or p.type_uuid,
            p.designator or "",
            p.label,
            p.filesystem.type if p.filesystem and p.filesystem.type else "",
            tuple(p.flags),
        )
        for p in report.partitions
    ]
    end = max((p.offset + p.size for p in parts), default=0)
    return end + 33 * 512, parts


def _box(p: MapPartition, disk: int, row: int) -> str:
    x = round(p.offset / disk * WIDTH)
    w = max(MIN_BOX, round(p.size / disk * WIDTH))
    fill = COLOURS.get(p.designator, "#bbbbbb")
    title = f"partition {p.number}: {p.type_name} {p.label} {human_size(p.size)}"
    inside = escape(str(p.number)) if w >= 14 else ""
    ly = BAR_Y + BAR_H + LABEL_LINE * (row + 1)
    desc = " ".join(
        bit
        for bit in (
            f"{p.number}: {p.type_name}",
            p.filesystem,
            human_size(p.size),
            f"[{', '.join(p.flags)}]" if p.flags else "",
            f"“{p.label}”" if p.label else "",
        )
        if bit
    )
    return (
        f'<g class="partition"><title>{escape(title)}</title>'
        f'<rect x="{x}" y="{BAR_Y}" width="{w}" height="{BAR_H}" fill="{fill}" '
        f'stroke="#333" stroke-width="1"/>'
        f'<text x="{x + w / 2:.1f}" y="{BAR_Y + BAR_H / 2 + 5}" text-anchor="middle" '
        f'font-size="13">{inside}</text>'
        f'<line x1="{x + 1}" y1="{BAR_Y + BAR_H}" x2="{x + 1}" y2="{ly - 11}" stroke="#999"/>'
        f'<text x="{x + 3}" y="{ly}" font-size="12">{escape(desc)}</text></g>'
    )


def partition_svg(disk_size: int, partitions: list[MapPartition], title: str = "") -> str:
    """The map as a standalone SVG document (also inlined in HTML as it is)."""
    disk = max(disk_size, 1)
    parts = sorted(partitions, key=lambda p: p.offset)
    height = BAR_Y + BAR_H + LABEL_LINE * (len(parts) + 1) + 8
    heading = title or f"disk {human_size(disk_size)}, {len(parts)} partitions (GPT)"
    body = "".join(_box(p, disk, row) for row, p in enumerate(parts))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="partition-map" width="{WIDTH + 2}" '
        f'height="{height}" viewBox="-1 0 {WIDTH + 2} {height}" role="img" '
        f'aria-label={quoteattr(heading)} font-family="sans-serif">'
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(heading)}</text>'
        f'<rect x="0" y="{BAR_Y}" width="{WIDTH}" height="{BAR_H}" fill="#f4f4f4" '
        f'stroke="#333"/>{body}</svg>\n'
    )
