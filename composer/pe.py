"""Read the sections of PE binaries (UKIs, boot loaders) with pefile."""

from __future__ import annotations

from pathlib import Path

import pefile


def sections(data: bytes) -> dict[str, bytes]:
    """Section name -> the bytes the loader maps (VirtualSize, zero-padded past raw data)."""
    pe = pefile.PE(data=data, fast_load=True)
    result: dict[str, bytes] = {}
    for s in pe.sections:
        name = s.Name.rstrip(b"\0").decode("ascii", errors="replace")
        raw = s.get_data()[: s.SizeOfRawData]
        size = s.Misc_VirtualSize or s.SizeOfRawData
        body = raw[:size]
        result[name] = body + b"\0" * (size - len(body))
    pe.close()
    return result


def file_sections(path: Path) -> dict[str, bytes]:
    return sections(path.read_bytes())
