"""Image outputs (qemu-img conversions), checksums and manifest.json."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from composer import tools


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def convert(raw: Path, fmt: str, dest: Path, log: Path) -> None:
    if fmt == "qcow2":
        opts = ["-c", "-o", "compression_type=zstd"]
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    tools.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, str(raw), str(dest)], log=log)


def describe(path: Path, fmt: str) -> dict[str, Any]:
    st = path.stat()
    return {
        "file": path.name,
        "format": fmt,
        "size": st.st_size,
        "allocated": st.st_blocks * 512,
        "sha256": sha256_file(path),
    }


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
