"""Any disk image as a raw file for the offline readers: raw as it is, anything qemu-img reads
(qcow2, vmdk, vhdx, vhd) converted to a sparse temporary raw file that is removed afterwards.
Images that name other files are refused first (composer/image/formats.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from composer.core import tools
from composer.core.workdir import scratch_dir, work_parent
from composer.image.formats import detect_format, image_opts


@contextlib.contextmanager
def raw_view(image: Path, work_dir: Path | None = None) -> Iterator[Path]:
    """Yield a raw file with the image's disk contents (the image itself when it is raw),
    as an absolute path: a name that starts with '-' never reaches a tool as an option."""
    fmt = detect_format(image)
    if fmt == "raw":
        yield image.absolute()
        return
    with scratch_dir("raw", work_parent(work_dir)) as tmp:
        raw = tmp / "disk.raw"
        # -S 4k: runs of zeros stay holes, so a mostly empty 2 GiB disk costs little space
        tools.run(["qemu-img", "convert", "-O", "raw", "-S", "4k", image_opts(image, fmt), raw])
        yield raw
