"""`inspect --svg`: the partition map to scale, from a real GPT (sfdisk)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from composer.inspect.partition_map import MapPartition, partition_svg
from composer.spec import dps

from ..cli_run import cli

SVG = "{http://www.w3.org/2000/svg}"


def gpt_image(path: Path) -> Path:
    path.write_bytes(b"\0" * 64 * 2**20)
    home, root = dps.by_name("home").uuid, dps.by_name("root-x86-64").uuid
    table = f"label: gpt\nsize=8MiB, type={home}, name=home\ntype={root}, name=<root&>\n"
    subprocess.run(["sfdisk", "-q", path], input=table.encode(), check=True)
    return path


def test_inspect_draws_the_partitions_to_scale(tmp_path: Path) -> None:
    image, svg = gpt_image(tmp_path / "disk.raw"), tmp_path / "map.svg"
    done = cli("inspect", image, "--svg", svg)
    assert done.returncode == 1  # no file systems: not discoverable, the map is written anyway
    root = ET.fromstring(svg.read_text())  # well-formed: the label "<root&>" is escaped
    boxes = [g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g")]
    widths = [float(b.get("width", 0)) for b in boxes if b is not None]
    assert len(widths) == 2 and 6.5 < widths[1] / widths[0] < 7.5  # 8 MiB and about 55 MiB
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "1: home" in texts and "2: root-x86-64" in texts and "<root&>" in texts


def test_a_tiny_partition_stays_visible() -> None:
    parts = [
        MapPartition(1, 2**20, 2**20, "esp", "esp", "", "vfat", ()),
        MapPartition(2, 2**21, 2**40, "root-x86-64", "root", "", "ext4", ("grow-fs",)),
    ]
    root = ET.fromstring(partition_svg(2**40 + 2**22, parts))
    widths = [float(g.find(f"{SVG}rect").get("width", 0)) for g in root.iter(f"{SVG}g")]  # type: ignore[union-attr]
    assert widths[0] >= 6
