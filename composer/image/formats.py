"""Disk image formats: the ones a build writes (:data:`FORMATS`), what an image file is, read
from its own bytes (:func:`detect_format`: the one sniffer; :func:`vhd_footer`,
:func:`compression`), and how QEMU opens it without following anything the file names.

Several formats can make QEMU open *other* files: a qcow2 backing file or external data
file (QEMU docs/interop/qcow2.txt), a VMDK descriptor's extents or a VMDK's
parentFileNameHint (VMware's Virtual Disk Format 1.1; QEMU block/vmdk.c), a differencing
VHD's or VHDX's parent (Microsoft's VHD and VHDX specifications), a QED backing file. An
image given to ``inspect``, ``boot`` or ``fixup`` may come from anyone, so such images are
refused here, before any tool sees them; probing never runs ``qemu-img info`` on an
unchecked file (that alone opens a descriptor's extents). Every later QEMU call names the
format driver explicitly in JSON options (:func:`blockdev`): a file QEMU would probe as
something else is read as what was checked, and no path is ever re-parsed from a
``-drive``-style string.
"""

from __future__ import annotations

import json
import os
import re
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.core import tools
from composer.core.errors import ComposerError

QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QCOW2_EXT_DATA_FILE = 0x44415441
_QCOW2_EXT_BACKING_FORMAT = 0xE2792ACA
# Compressed data by its magic (zstd: RFC 8878; xz: the .xz file format; gzip: RFC 1952).
COMPRESSION_MAGIC = {b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gzip"}
VHD_COOKIE = b"conectix"
VHD_FOOTER = 512
VHD_FIXED, VHD_DYNAMIC, VHD_DIFFERENCING = 2, 3, 4  # the footer's "disk type"
_VHDX_METADATA_REGION = uuid.UUID("8b7ca206-4790-4b9a-b8fe-575f050f886e")
_VHDX_FILE_PARAMETERS = uuid.UUID("caa16737-fa36-4d43-b3b6-33f0aa44e76b")
_DESCRIPTOR_MAX = 1 << 20


@dataclass(frozen=True)
class OutputFormat:
    name: str  # the blueprint's name and the file suffix: NAME.<name>
    qemu: str | None  # qemu-img/QEMU format driver; None: compressed raw, decompress to use
    checkable: bool = False  # `qemu-img check` supports it


# One row per [image] formats value (the blueprint's OutputFormat lists the same names).
FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat("raw", "raw"),
        OutputFormat("raw.zst", None),
        OutputFormat("raw.xz", None),
        OutputFormat("qcow2", "qcow2", checkable=True),
        OutputFormat("vmdk", "vmdk", checkable=True),  # streamOptimized
        OutputFormat("vhdx", "vhdx", checkable=True),
        OutputFormat("vhd", "vpc"),  # fixed, whole MiB (Azure)
    )
}


@dataclass(frozen=True)
class VhdFooter:
    """The fields of a VHD footer (Microsoft's VHD specification: big-endian) that matter here."""

    current_size: int
    disk_type: int


def vhd_footer(footer: bytes) -> VhdFooter | None:
    """The footer in ``footer`` (512 bytes: the file's last, or a dynamic VHD's first copy);
    None when it does not start with the VHD cookie."""
    if len(footer) < VHD_FOOTER or not footer.startswith(VHD_COOKIE):
        return None
    (current_size,) = struct.unpack_from(">Q", footer, 48)
    (disk_type,) = struct.unpack_from(">I", footer, 60)
    return VhdFooter(current_size, disk_type)


def compression(head: bytes) -> str | None:
    """zstd, xz or gzip when ``head`` (a file's first bytes) starts compressed data."""
    return next((name for magic, name in COMPRESSION_MAGIC.items() if head.startswith(magic)), None)


class ImageFileError(ComposerError):
    """An image file that cannot be used safely as given (names the file and why)."""

    exit_code = 2


class _Head:
    """Bounded reads of the file; a read past the end is a truncated image."""

    def __init__(self, path: Path, fh: Any, size: int) -> None:
        self.path, self.fh, self.size = path, fh, size

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or offset + length > self.size:
            raise ImageFileError(f"{self.path}: truncated {what} (the file ends at {self.size})")
        self.fh.seek(offset)
        data: bytes = self.fh.read(length)
        return data


def detect_format(path: Path) -> str:
    """The QEMU format driver of ``path``: qcow2, vmdk, vhdx, vpc (VHD), else raw; refuses
    images that name other files, truncated headers and compressed images."""
    if not path.is_file():
        raise ImageFileError(f"{path}: no such image file (or not a regular file)")
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h = _Head(path, fh, size)
        head = fh.read(512)
        kind = compression(head)
        if kind is not None:
            raise ImageFileError(
                f"{path.name} is {kind}-compressed: decompress it first ({kind} -d {path.name})"
            )
        if head.startswith(QCOW2_MAGIC):
            _check_qcow2(h)
            return "qcow2"
        if head.startswith((b"KDMV", b"COWD")) or _is_descriptor(head):
            _check_vmdk(h, head)
            return "vmdk"
        if head.startswith(b"QED\0"):
            raise ImageFileError(f"{path}: a QED image (it can name a backing file); convert it")
        if head.startswith(b"vhdxfile"):
            _check_vhdx(h)
            return "vhdx"
        footer = h.read(size - VHD_FOOTER, VHD_FOOTER, "VHD footer") if size >= VHD_FOOTER else b""
        if head.startswith(VHD_COOKIE) or footer.startswith(VHD_COOKIE):
            found = vhd_footer(head if head.startswith(VHD_COOKIE) else footer)
            if found is None:
                raise ImageFileError(f"{path}: truncated VHD footer")
            _check_vhd(h, found)
            return "vpc"
    return "raw"


def _refuse(h: _Head, what: str, names: str) -> ImageFileError:
    return ImageFileError(
        f"{h.path}: {what} names another file ({names}); images that refer to other files "
        "are not opened (they could read any file on this host): give a standalone copy "
        "(qemu-img convert -O qcow2 IMAGE COPY)"
    )


def _check_qcow2(h: _Head) -> None:
    hdr = h.read(0, 72, "qcow2 header")
    version, backing_off, backing_len, cluster_bits = struct.unpack(">IQII", hdr[4:24])
    if version not in (2, 3):
        raise ImageFileError(f"{h.path}: qcow2 version {version} is not one QEMU writes")
    if not 9 <= cluster_bits <= 21:
        raise ImageFileError(f"{h.path}: qcow2 cluster size 2^{cluster_bits} is not valid")
    if backing_off:
        name = h.read(backing_off, min(backing_len, 1023), "qcow2 backing file name")
        raise _refuse(h, "this qcow2 image", f"backing file {name.decode(errors='replace')!r}")
    ext_start = 72
    if version == 3:
        v3 = h.read(72, 32, "qcow2 version 3 header")
        incompatible = struct.unpack(">Q", v3[:8])[0]
        ext_start = struct.unpack(">I", v3[28:32])[0]
        if incompatible & _QCOW2_INCOMPAT_DATA_FILE:
            raise _refuse(h, "this qcow2 image", "an external data file")
        if ext_start < 104:
            raise ImageFileError(f"{h.path}: qcow2 header length {ext_start} is too short")
    _check_qcow2_extensions(h, ext_start, 1 << cluster_bits)


def _check_qcow2_extensions(h: _Head, offset: int, cluster: int) -> None:
    """Header extensions: (type, length, data padded to 8) until type 0, in the first
    cluster."""
    while offset + 8 <= cluster:
        kind, length = struct.unpack(">II", h.read(offset, 8, "qcow2 header extension"))
        if kind == 0:
            return
        if kind == _QCOW2_EXT_DATA_FILE:
            name = h.read(offset + 8, min(length, 1023), "qcow2 data file name")
            raise _refuse(h, "this qcow2 image", f"data file {name.decode(errors='replace')!r}")
        offset += 8 + (length + 7) // 8 * 8
    raise ImageFileError(f"{h.path}: qcow2 header extensions run past the first cluster")


def _is_descriptor(head: bytes) -> bool:
    text = head.decode("latin-1")
    return text.startswith("# Disk DescriptorFile") or bool(
        re.search(r"(?m)^\s*createType\s*=", text)
    )


def _check_vmdk(h: _Head, head: bytes) -> None:
    if head.startswith(b"COWD"):
        raise ImageFileError(f"{h.path}: a VMDK3 (COWD) image; convert it with qemu-img")
    if not head.startswith(b"KDMV"):  # a text descriptor: its data lives in extent files
        text = h.read(0, min(h.size, _DESCRIPTOR_MAX), "VMDK descriptor").decode("latin-1")
        extents = re.findall(r'(?m)^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\S+\s+"([^"]*)"', text)
        names = ", ".join(repr(e) for e in extents) or "its extents"
        raise _refuse(h, "this VMDK descriptor", f"extent {names}")
    hdr = h.read(0, 512, "VMDK sparse header")
    desc_sector, desc_sectors = struct.unpack("<QQ", hdr[28:44])
    regions = [(0x200, 20 * 512)]  # where QEMU looks for a parent (block/vmdk.c desc_offset)
    if desc_sector:
        regions.append((desc_sector * 512, min(desc_sectors * 512, _DESCRIPTOR_MAX)))
    for offset, length in regions:
        h.fh.seek(offset)
        m = re.search(rb'parentFileNameHint\s*=\s*"([^"]*)"', h.fh.read(length))
        if m:
            raise _refuse(h, "this VMDK", f"parent {m.group(1).decode(errors='replace')!r}")


def _check_vhd(h: _Head, footer: VhdFooter) -> None:
    if footer.disk_type == VHD_DIFFERENCING:
        raise _refuse(h, "this differencing VHD", "its parent disk")
    if footer.disk_type not in (VHD_FIXED, VHD_DYNAMIC):
        raise ImageFileError(f"{h.path}: VHD disk type {footer.disk_type} is not fixed or dynamic")


def _check_vhdx(h: _Head) -> None:
    """VHDX: the region table (at 192 KiB) leads to the metadata table, whose file
    parameters say whether the disk has a parent (bit 1, HasParent)."""
    table = h.read(0x30000, 0x10000, "VHDX region table")
    if table[:4] != b"regi":
        raise ImageFileError(f"{h.path}: VHDX region table signature missing")
    count = min(struct.unpack("<I", table[8:12])[0], 2047)
    meta = None
    for i in range(count):
        entry = table[16 + 32 * i : 48 + 32 * i]
        if uuid.UUID(bytes_le=entry[:16]) == _VHDX_METADATA_REGION:
            meta = struct.unpack("<QI", entry[16:28])
    if meta is None:
        raise ImageFileError(f"{h.path}: VHDX without a metadata region")
    offset, length = meta
    region = h.read(offset, min(length, _DESCRIPTOR_MAX), "VHDX metadata region")
    if region[:8] != b"metadata":
        raise ImageFileError(f"{h.path}: VHDX metadata table signature missing")
    for i in range(min(struct.unpack("<H", region[10:12])[0], 2047)):
        item = region[32 + 32 * i : 64 + 32 * i]
        if len(item) < 32 or uuid.UUID(bytes_le=item[:16]) != _VHDX_FILE_PARAMETERS:
            continue
        at = struct.unpack("<I", item[16:20])[0]
        params = region[at : at + 8]
        if len(params) < 8:
            raise ImageFileError(f"{h.path}: truncated VHDX file parameters")
        if struct.unpack("<I", params[4:8])[0] & 2:
            raise _refuse(h, "this differencing VHDX", "its parent disk")


def blockdev(
    path: Path, fmt: str, *, node: str | None = None, read_only: bool = False
) -> dict[str, Any]:
    """QEMU block options (``-blockdev``, or ``json:`` for qemu-img) that open exactly this
    file with exactly this driver: no probing, no name parsing, no backing file."""
    opts: dict[str, Any] = {
        "driver": fmt,
        "read-only": read_only,
        "file": {"driver": "file", "filename": str(path.absolute()), "read-only": read_only},
    }
    if fmt in ("qcow2", "vmdk"):
        opts["backing"] = None  # belt and braces: detect_format refused any backing file
    if node is not None:
        opts["node-name"] = node
    return opts


def image_opts(path: Path, fmt: str) -> str:
    """A qemu-img filename that is the JSON options of :func:`blockdev`."""
    return "json:" + json.dumps(blockdev(path, fmt, read_only=True))


def virtual_size(path: Path, fmt: str) -> int:
    """The disk size the image presents (qemu-img info on the checked file)."""
    info = json.loads(tools.output(["qemu-img", "info", "--output=json", image_opts(path, fmt)]))
    return int(info["virtual-size"])


MBR_SIGNATURE = b"\x55\xaa"  # bytes 510-511 of a disk with an MBR or protective MBR
GPT_SIGNATURE = b"EFI PART"  # the GPT header at LBA 1 (512-byte sectors)


def disk_image_kind(path: Path) -> str | None:
    """What kind of disk image ``path`` is (qcow2, vmdk, vhdx, vpc, a compressed image, a
    raw disk with a partition table, or a raw file with binary content), None when it is
    none (a text file: a JSON or XML report). A report written over it would destroy it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    kind = compression(head)
    if kind is not None:
        return f"{kind}-compressed image"
    try:
        fmt = detect_format(path)
    except ImageFileError:
        return "disk image (damaged header)"
    if fmt != "raw":
        return fmt
    if head[510:512] == MBR_SIGNATURE or head[512:520] == GPT_SIGNATURE:
        return "raw disk image with a partition table"
    if b"\0" in head:
        return "raw disk image (binary content)"
    return None
