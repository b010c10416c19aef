"""Any disk image as a raw file for the offline readers: raw as it is, anything qemu-img reads
(qcow2, vmdk, vhdx, vhd) converted to a sparse temporary raw file that is removed afterwards."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from composer import tools
from composer.errors import ComposerError
from composer.workdir import scratch_dir, work_parent


def image_format(image: Path) -> str:
    """qemu-img's format name for ``image`` (raw for anything it does not recognise)."""
    with open(image, "rb") as fh:
        if fh.read(4) == b"QFI\xfb":
            return "qcow2"
    info = json.loads(tools.output(["qemu-img", "info", "--output=json", str(image)]))
    return str(info.get("format", "raw"))


@contextlib.contextmanager
def raw_view(image: Path, work_dir: Path | None = None) -> Iterator[Path]:
    """Yield a raw file with the image's disk contents (the image itself when it is raw)."""
    if not image.is_file():
        raise ComposerError(f"{image}: no such image file")
    fmt = image_format(image)
    if fmt == "raw":
        yield image
        return
    with scratch_dir("raw", work_parent(work_dir)) as tmp:
        raw = tmp / "disk.raw"
        # -S 4k: runs of zeros stay holes, so a mostly empty 2 GiB disk costs little space
        tools.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", "-S", "4k", str(image), str(raw)])
        yield raw
