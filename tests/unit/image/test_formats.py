"""Images that name other files (qcow2 backing and data files, VMDK descriptors, extents and
parents, differencing VHD/VHDX, QED) and truncated headers: refused by ``inspect``, ``boot``
and ``fixup`` before anything opens the file they name.

The file an image names is a FIFO: opening it for reading would block, so a command that
returns at all has not opened it (each runs with a timeout)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from composer.core.errors import ComposerError
from composer.image.formats import (
    ImageFileError,
    blockdev,
    detect_format,
    disk_image_kind,
    image_opts,
)

from ..cli_run import cli

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


def _fifo(d: Path, name: str = "host-secret") -> Path:
    target = d / name
    os.mkfifo(target)
    return target


def qcow2_backing(d: Path) -> Path:
    base = d / "base.raw"
    base.write_bytes(b"\0" * 65536)
    qemu_img("create", "-f", "qcow2", "-b", base, "-F", "raw", d / "img", "64K")
    base.unlink()
    os.mkfifo(base)  # the backing file is now a FIFO: reading it would hang
    return d / "img"


def qcow2_relative_backing(d: Path) -> Path:
    (d / "sub").mkdir()
    (d / "sub/b.qcow2").write_bytes(b"")
    qemu_img(
        "create", "-f", "qcow2", "-u", "-b", "../host-secret", "-F", "raw", d / "sub/img", "64K"
    )
    _fifo(d)
    return d / "sub/img"


def qcow2_data_file(d: Path) -> Path:
    data = d / "data.raw"
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={data},data_file_raw=on", d / "img", "64K")
    data.unlink()
    os.mkfifo(data)
    return d / "img"


def vmdk_descriptor(d: Path) -> Path:
    host = _fifo(d)
    (d / "img").write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="monolithicFlat"\n\nRW 2048 FLAT "{host}" 0\n'
    )
    return d / "img"


def vmdk_descriptor_no_header(d: Path) -> Path:
    host = _fifo(d)
    (d / "img").write_text(f'version=1\ncreateType="vmfs"\nRW 2048 VMFS "{host}"\n')
    return d / "img"


def vmdk_flat_made_by_qemu_img(d: Path) -> Path:
    qemu_img("create", "-f", "vmdk", "-o", "subformat=monolithicFlat", d / "img.vmdk", "1M")
    flat = d / "img-flat.vmdk"
    flat.unlink()
    os.mkfifo(flat)
    return d / "img.vmdk"


def vmdk_with_parent(d: Path) -> Path:
    qemu_img("create", "-f", "vmdk", d / "parent.vmdk", "1M")
    qemu_img("create", "-f", "vmdk", "-b", d / "parent.vmdk", "-F", "vmdk", d / "img", "1M")
    (d / "parent.vmdk").unlink()
    os.mkfifo(d / "parent.vmdk")
    return d / "img"


def vhd_differencing(d: Path) -> Path:
    qemu_img("create", "-f", "vpc", "-o", "subformat=dynamic", d / "img", "1M")
    data = bytearray((d / "img").read_bytes())
    for at in (0, len(data) - 512):  # the footer and its copy at the start
        data[at + 60 : at + 64] = struct.pack(">I", 4)
    (d / "img").write_bytes(bytes(data))
    return d / "img"


def vhdx_differencing(d: Path) -> Path:
    qemu_img("create", "-f", "vhdx", d / "img", "8M")
    data = bytearray((d / "img").read_bytes())
    table = 0x30000
    meta_region = uuid.UUID("8b7ca206-4790-4b9a-b8fe-575f050f886e").bytes_le
    params = uuid.UUID("caa16737-fa36-4d43-b3b6-33f0aa44e76b").bytes_le
    for i in range(struct.unpack("<I", data[table + 8 : table + 12])[0]):
        entry = data[table + 16 + 32 * i : table + 48 + 32 * i]
        if bytes(entry[:16]) == meta_region:
            region = struct.unpack("<Q", entry[16:24])[0]
    for i in range(struct.unpack("<H", data[region + 10 : region + 12])[0]):
        item = data[region + 32 + 32 * i : region + 64 + 32 * i]
        if bytes(item[:16]) == params:
            at = region + struct.unpack("<I", item[16:20])[0]
            data[at + 4] |= 2  # HasParent
    (d / "img").write_bytes(bytes(data))
    return d / "img"


def qed_backing(d: Path) -> Path:
    qemu_img("create", "-f", "qed", "-b", _fifo(d), "-F", "raw", "-u", d / "img", "1M")
    return d / "img"


def truncated(source: Callable[[Path], Path], keep: int) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        img = source(d)
        with open(img, "r+b") as fh:
            fh.truncate(keep)
        return img

    return make


def qcow2_plain(d: Path) -> Path:
    qemu_img("create", "-f", "qcow2", d / "img", "1M")
    return d / "img"


def vmdk_sparse(d: Path) -> Path:
    qemu_img("create", "-f", "vmdk", d / "img", "1M")
    return d / "img"


def vhd_dynamic(d: Path) -> Path:
    qemu_img("create", "-f", "vpc", "-o", "subformat=dynamic", d / "img", "1M")
    return d / "img"


def vhdx_plain(d: Path) -> Path:
    qemu_img("create", "-f", "vhdx", d / "img", "8M")
    return d / "img"


REFERENCES = {
    "qcow2 backing file": (qcow2_backing, "backing file"),
    "qcow2 relative backing file": (qcow2_relative_backing, "../host-secret"),
    "qcow2 external data file": (qcow2_data_file, "data file"),
    "VMDK descriptor with an extent": (vmdk_descriptor, "host-secret"),
    "VMDK descriptor without its header line": (vmdk_descriptor_no_header, "extent"),
    "VMDK monolithicFlat (qemu-img)": (vmdk_flat_made_by_qemu_img, "img-flat.vmdk"),
    "VMDK with a parent": (vmdk_with_parent, "parent"),
    "differencing VHD": (vhd_differencing, "differencing VHD"),
    "differencing VHDX": (vhdx_differencing, "differencing VHDX"),
    "QED with a backing file": (qed_backing, "QED"),
    "qcow2 header cut at 40 bytes": (truncated(qcow2_plain, 40), "truncated"),
    "qcow2 v3 header cut at 90 bytes": (truncated(qcow2_plain, 90), "truncated"),
    "VMDK sparse header cut at 300 bytes": (truncated(vmdk_sparse, 300), "truncated"),
    "dynamic VHD cut at 100 bytes": (truncated(vhd_dynamic, 100), "truncated"),
    "VHDX cut at 64 KiB": (truncated(vhdx_plain, 65536), "truncated"),
}


@needs_qemu_img
@pytest.mark.parametrize("case", list(REFERENCES))
def test_detect_format_refuses(case: str, tmp_path: Path) -> None:
    make, words = REFERENCES[case]
    image = make(tmp_path)
    with pytest.raises(ImageFileError, match=words.replace("(", r"\(")):
        detect_format(image)


@needs_qemu_img
@pytest.mark.parametrize("case", [c for c in REFERENCES if "truncated" not in REFERENCES[c][1]])
@pytest.mark.parametrize("command", [("inspect",), ("fixup", "--dry-run"), ("boot", "--no-tpm")])
def test_commands_refuse_without_opening_the_named_file(
    case: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    image = REFERENCES[case][0](tmp_path)
    proc = cli(*command, image)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "refer to other files" in proc.stderr or "QED" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@needs_qemu_img
def test_fixup_copy_is_refused_before_copying(tmp_path: Path) -> None:
    image = qcow2_backing(tmp_path)
    proc = cli("fixup", image, "-o", tmp_path / "copy.qcow2")
    assert proc.returncode == 2 and "backing file" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.raw", "img"]


@needs_qemu_img
@pytest.mark.parametrize(
    ("make", "fmt"),
    [(qcow2_plain, "qcow2"), (vmdk_sparse, "vmdk"), (vhd_dynamic, "vpc"), (vhdx_plain, "vhdx")],
)
def test_standalone_images_pass_and_open_only_themselves(
    make: Callable[[Path], Path], fmt: str, tmp_path: Path
) -> None:
    image = make(tmp_path)
    assert detect_format(image) == fmt
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", image_opts(image, fmt)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert f'"format": "{fmt}"' in out


def test_odd_names_stay_one_json_value(tmp_path: Path) -> None:
    """A path with commas, '=' or a leading '-' is one JSON string: nothing re-parses it."""
    image = tmp_path / "-a,file=shadow,b=c.raw"
    image.write_bytes(b"\0" * 1024)
    opts = blockdev(image, detect_format(image), node="disk0")
    assert opts["file"]["filename"] == str(image) and opts["driver"] == "raw"


def test_compressed_and_missing_images(tmp_path: Path) -> None:
    (tmp_path / "a.raw.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 600)
    with pytest.raises(ComposerError, match="decompress"):
        detect_format(tmp_path / "a.raw.zst")
    with pytest.raises(ImageFileError, match="no such image"):
        detect_format(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo.raw")
    with pytest.raises(ImageFileError, match="no such image file"):  # never opened
        detect_format(tmp_path / "fifo.raw")


@needs_qemu_img
def test_boot_command_refuses_an_image_with_a_manifest_too(tmp_path: Path) -> None:
    """An image beside a manifest.json (built by the composer, or claiming to be) reaches
    QEMU's command line without inspect: the drive arguments check it themselves."""
    from composer.image.firmware import select_firmware
    from composer.judge.qemu import QemuConfig, build_command
    from composer.spec.arch import get_arch

    image = qcow2_backing(tmp_path)
    arch = get_arch("x86_64")
    try:
        fw = select_firmware(arch, arch.machine, secure_boot=False)
    except ComposerError:
        pytest.skip("no OVMF firmware descriptor")
    cfg = QemuConfig(
        firmware=fw, vars_copy=tmp_path / "vars.fd", accel_args=(), console_log=tmp_path / "c",
        check_log=tmp_path / "k", image=image,
    )  # fmt: skip
    with pytest.raises(ImageFileError, match="backing file"):
        build_command("qemu-system-x86_64", cfg)
    assert not (tmp_path / "overlay.qcow2").exists()


@needs_qemu_img
def test_disk_images_are_told_from_reports(tmp_path: Path) -> None:
    """What a report (--json-file, --junit) may replace: text, never a disk image."""
    gpt = tmp_path / "gpt.raw"
    gpt.write_bytes(b"\0" * 2**20)
    subprocess.run(["sfdisk", "-q", gpt], input=b"label: gpt\n,\n", check=True)
    blank = tmp_path / "blank.raw"
    blank.write_bytes(b"\0" * 4096)
    report = tmp_path / "report.json"
    report.write_text('{"passed": true}\n')
    assert disk_image_kind(qcow2_plain(tmp_path)) == "qcow2"
    assert disk_image_kind(vhdx_plain(tmp_path)) == "vhdx"
    assert disk_image_kind(gpt) == "raw disk image with a partition table"
    assert disk_image_kind(blank) == "raw disk image (binary content)"
    assert disk_image_kind(report) is None
    assert disk_image_kind(tmp_path / "missing") is None
