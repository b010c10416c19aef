"""OVMF varstores shipped beside an image: Secure Boot keys enrolled and UEFI boot entries
(Boot#### + BootOrder), written offline with virt-firmware's library (the code behind
virt-fw-vars): a copy of the firmware's nvram template goes in, a new file comes out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virt.firmware.efi import bootentry, devpath
from virt.firmware.varstore import autodetect

from composer.core.errors import ComposerError
from composer.core.files import atomic_path
from composer.toolchain.secureboot import KEY_NAMES, KeySet

SECTOR = 512  # the HD() device path node counts 512-byte logical blocks


@dataclass(frozen=True)
class BootOption:
    """A Boot#### load option for a file on a GPT partition: HD(n,GPT,uuid,start,size)/\\path."""

    title: str
    path: str  # ESP path, e.g. EFI/Linux/debian-6.12.43+deb13-amd64.efi
    partition_number: int
    partition_uuid: str
    partition_start: int  # bytes
    partition_size: int  # bytes

    def device_path(self) -> Any:
        hd = devpath.DevicePathElem()
        hd.set_gpt(
            self.partition_number,
            self.partition_start // SECTOR,
            self.partition_size // SECTOR,
            self.partition_uuid,
        )
        file = devpath.DevicePathElem()
        file.set_filepath("\\" + self.path.strip("/").replace("/", "\\"))
        path = devpath.DevicePath()
        path.append(hd)
        path.append(file)
        return path


def _open(path: Path) -> Any:
    store = autodetect.open_varstore(str(path))
    if store is None:
        raise ComposerError(f"{path}: not a varstore virt-firmware can read")
    return store


def make_varstore(
    template: Path,
    dest: Path,
    *,
    keys: KeySet | None = None,
    boot_options: Sequence[BootOption] = (),
) -> None:
    """``dest`` = ``template`` + PK/KEK/db certificates and Secure Boot on (with ``keys``) +
    one Boot#### per option, in that order at the front of BootOrder. Written atomically."""
    store = _open(template)
    varlist = store.get_varlist()
    if keys is not None:
        varlist.add_cert("PK", keys.owner, str(keys.cert("PK")), True)
        varlist.add_cert("KEK", keys.owner, str(keys.cert("KEK")), True)
        varlist.add_cert("db", keys.owner, str(keys.cert("db")), True)
        varlist.enable_secureboot()  # SecureBootEnable=1, CustomMode=0, a dummy dbx
    for option in boot_options:
        index = varlist.add_boot_entry(option.title, option.device_path())
        if index is None:
            raise ComposerError(f"{template}: no free Boot#### variable")
        varlist.append_boot_order(index)
    with atomic_path(dest) as tmp:
        store.write_varstore(str(tmp), varlist)


@dataclass(frozen=True)
class VarstoreSummary:
    boot_entries: dict[str, dict[str, str]]  # Boot#### -> {title, device_path}
    boot_order: list[str]
    secure_boot_enable: bool
    enrolled: dict[str, int]  # PK/KEK/db -> number of certificates


def _sigdb_count(var: Any) -> int:
    sigdb = getattr(var, "sigdb", None)
    return len(list(sigdb)) if sigdb else 0


def read_varstore(path: Path) -> VarstoreSummary:
    """What a varstore holds that the composer cares about (for the manifest and tests)."""
    varlist = _open(path).get_varlist()
    entries: dict[str, dict[str, str]] = {}
    for name, var in varlist.items():
        if re.fullmatch(r"Boot[0-9A-F]{4}", name):
            entry = bootentry.BootEntry(data=var.data)
            entries[name] = {"title": str(entry.title), "device_path": str(entry.devicepath)}
    order_var = varlist.get("BootOrder")
    order: list[str] = []
    if order_var is not None:
        data = bytes(order_var.data)
        order = [
            f"Boot{int.from_bytes(data[i : i + 2], 'little'):04X}" for i in range(0, len(data), 2)
        ]
    sb = varlist.get("SecureBootEnable")
    return VarstoreSummary(
        boot_entries=entries,
        boot_order=order,
        secure_boot_enable=bool(sb is not None and sb.data and sb.data[0]),
        enrolled={n: _sigdb_count(varlist.get(n)) for n in KEY_NAMES if varlist.get(n)},
    )
