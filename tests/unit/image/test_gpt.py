from pathlib import Path

from composer.build.fs.fs import copy_into
from composer.core.units import MiB
from composer.image.gpt import GptEntry, read_gpt, sfdisk_script, write_gpt

ENTRIES = [
    GptEntry(
        1,
        MiB,
        64 * MiB,
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
        "11111111-2222-3333-4444-555555555555",
        "esp",
    ),
    GptEntry(
        2,
        65 * MiB,
        30 * MiB,
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        "66666666-7777-8888-9999-aaaaaaaaaaaa",
        "root-x86-64",
        attrs=(1 << 59) | (1 << 63),
    ),
]
DISK = "0b8d6a2e-0d3c-4c55-9d1e-6f8a4dbe6c11"


def test_gpt_written_and_read_back(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    with open(image, "wb") as fh:
        fh.truncate(100 * MiB)
    write_gpt(image, DISK, ENTRIES)
    disk_guid, entries = read_gpt(image)
    assert disk_guid == DISK
    assert entries == ENTRIES


def test_partition_numbers_when_file_name_ends_in_digit(tmp_path: Path) -> None:
    image = tmp_path / "disk2"
    with open(image, "wb") as fh:
        fh.truncate(100 * MiB)
    write_gpt(image, DISK, ENTRIES)
    assert [e.number for e in read_gpt(image)[1]] == [1, 2]


def test_script_has_types_and_uuids() -> None:
    script = sfdisk_script(DISK, ENTRIES)
    assert "label: gpt" in script and f"label-id: {DISK.upper()}" in script
    assert "type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" in script
    assert 'attrs="GUID:59,63"' in script


def test_copy_into_keeps_data_at_offset_and_holes(tmp_path: Path) -> None:
    src = tmp_path / "fs.img"
    with open(src, "wb") as fh:
        fh.truncate(8 * MiB)
        fh.seek(3 * MiB)
        fh.write(b"payload")
    dest = tmp_path / "disk.raw"
    with open(dest, "wb") as fh:
        fh.truncate(32 * MiB)
    copy_into(src, dest, 4 * MiB)
    with open(dest, "rb") as fh:
        fh.seek(7 * MiB)
        assert fh.read(7) == b"payload"
    assert dest.stat().st_blocks * 512 < 2 * MiB
