"""Manifests for tests: whole, valid ones (composer/manifest/model.py), with the parts a test
is about given. Shared by the tests of everything that reads manifests."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from composer.manifest.model import Manifest

ROOT_X86 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"

_BASE: dict[str, Any] = {
    "manifest_version": 1,
    "name": "img",
    "version": "1.0.0",
    "architecture": "x86_64",
    "distro": "debian-13",
    "seed": "0b8d6a2e-0d3c-4c55-9d1e-6f8a4dbe6c11",
    "disk": {
        "size": 2 * 2**30,
        "guid": "1a2b3c4d-0000-4000-8000-000000000000",
        "partitions": [
            {
                "number": 1,
                "designator": "root",
                "type_name": "root-x86-64",
                "type_uuid": ROOT_X86,
                "uuid": "1a2b3c4d-0000-4000-8000-000000000001",
                "label": "root-x86-64",
                "offset": 2**20,
                "size": 2 * 2**30 - 2 * 2**20,
                "filesystem": "ext4",
                "fs_uuid": "1a2b3c4d-0000-4000-8000-000000000002",
                "mountpoint": "/",
                "flags": ["grow-fs"],
                "attrs": 1 << 59,
                "fstab": False,
                "read_only": False,
            }
        ],
        "fstab": [],
    },
    "boot": {"loader": "systemd-boot", "timeout": 0, "binaries": []},
    "uki": {
        "path": "EFI/Linux/debian-6.12.efi",
        "sha256": "0" * 64,
        "size": 1,
        "kernel_version": "6.12",
        "cmdline": "console=ttyS0",
    },
    "packages": {"systemd": "257"},
    "outputs": [],
    "expect": {
        "root_type_uuid": ROOT_X86,
        "tpm": True,
        "secure_boot": None,
        "pcrs": {},
        "dps_mounts": False,
        "grow_root": False,
    },
    "pcr11": {"phases": {"sha256": {"": "0" * 64}}, "booted_phase": ""},
    "validate": {"timeout": 600.0},
    "generated_passwords": [],
    "timings": {},
    "secureboot": {"signed": False},
    "package_pins": {},
    "source_date_epoch": 1735689600,
    "measured_boot": {
        "bank": "sha256",
        "varstore": "empty varstore",
        "secure_boot": False,
        "boot_chain": ["UKI"],
        "pcrs": {},
        "proof": "not proven",
    },
    "cache": {},
}


def output(file: str, data: bytes) -> dict[str, Any]:
    """The manifest's entry of an output file holding ``data``."""
    return {
        "file": file,
        "format": file.split(".", 1)[1],
        "size": len(data),
        "allocated": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "qemu_format": "raw",
        "virtual_size": len(data),
        "checked": "test",
    }


def manifest(**parts: Any) -> dict[str, Any]:
    """A valid manifest with ``parts`` (top-level keys; dictionaries are merged in)."""
    data = copy.deepcopy(_BASE)
    for key, value in parts.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    Manifest.model_validate_json(json.dumps(data))  # a test's manifest is one the build could write
    return data


def write(path: Path, **parts: Any) -> Path:
    path.write_text(json.dumps(manifest(**parts)))
    return path
