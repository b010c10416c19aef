"""OVMF varstores: read (the Secure Boot policy variables, the UEFI boot entries, what is
enrolled) and made for an image (Secure Boot keys enrolled, Boot#### + BootOrder), offline with
virt-firmware's library (the code behind virt-fw-vars).

One reader for every use: the manifest's description of a shipped varstore, the firmware PCR 7
prediction (composer/measure/firmware.py), the tests. Variable GUIDs: the UEFI specification
(EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE_GUID) and edk2's SecureBootEnable
(SecurityPkg/Include/Guid/AuthenticatedVariableFormat.h).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from virt.firmware.efi import bootentry, devpath
from virt.firmware.varstore import autodetect

from composer.core.errors import ComposerError
from composer.core.files import atomic_path

EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
IMAGE_SECURITY_DB = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
SECURE_BOOT_ENABLE = "f0a30bc7-af08-4556-99c4-001009c93a44"  # edk2's SecureBootEnable
# The variables PCR 7 measures, in the firmware's order (and their GUIDs)
POLICY_VARIABLES: tuple[tuple[str, str], ...] = (
    ("SecureBoot", EFI_GLOBAL),
    ("PK", EFI_GLOBAL),
    ("KEK", EFI_GLOBAL),
    ("db", IMAGE_SECURITY_DB),
    ("dbx", IMAGE_SECURITY_DB),
)
KEY_NAMES = ("PK", "KEK", "db")  # the key hierarchy a signed image's varstore enrolls
SECTOR = 512  # the HD() device path node counts 512-byte logical blocks


@dataclass(frozen=True)
class Varstore:
    """What a varstore holds that the composer reads."""

    source: str
    # (guid, name) -> value of the policy variables and SecureBootEnable (no auth headers)
    variables: Mapping[tuple[str, str], bytes]
    boot_entries: dict[str, dict[str, str]] = field(default_factory=dict)  # Boot#### -> title, path
    boot_order: list[str] = field(default_factory=list)
    enrolled: dict[str, int] = field(default_factory=dict)  # PK/KEK/db -> number of certificates

    def get(self, name: str, guid: str) -> bytes | None:
        return self.variables.get((guid, name))

    @property
    def secure_boot_enable(self) -> bool:
        """edk2's SecureBootEnable variable is set (to a non-zero byte)."""
        value = self.get("SecureBootEnable", SECURE_BOOT_ENABLE) or b""
        return value[:1] not in (b"", b"\0")

    @property
    def secure_boot(self) -> bool:
        """edk2: SecureBoot = 1 in user mode (PK enrolled) unless SecureBootEnable says 0."""
        if not self.get("PK", EFI_GLOBAL):
            return False
        enable = self.get("SecureBootEnable", SECURE_BOOT_ENABLE)
        return enable is None or enable[:1] != b"\0"


def _open(path: Path) -> Any:
    store = autodetect.open_varstore(str(path))
    if store is None:
        raise ComposerError(f"{path}: not a varstore virt-firmware can read (edk2 raw/qcow2, json)")
    return store


def _sigdb_count(var: Any) -> int:
    sigdb = getattr(var, "sigdb", None)
    return len(list(sigdb)) if sigdb else 0


def _boot_order(varlist: Any) -> list[str]:
    var = varlist.get("BootOrder")
    data = bytes(var.data) if var is not None else b""
    return [f"Boot{int.from_bytes(data[i : i + 2], 'little'):04X}" for i in range(0, len(data), 2)]


def read_varstore(path: Path) -> Varstore:
    """Read an edk2 varstore (raw or qcow2 flash image, or virt-firmware JSON)."""
    varlist = _open(path).get_varlist()
    wanted = {(g, n) for n, g in [*POLICY_VARIABLES, ("SecureBootEnable", SECURE_BOOT_ENABLE)]}
    variables: dict[tuple[str, str], bytes] = {}
    entries: dict[str, dict[str, str]] = {}
    for name, var in varlist.items():
        key = (str(var.guid).lower(), str(name))
        if key in wanted:
            variables[key] = bytes(var.data)
        if re.fullmatch(r"Boot[0-9A-F]{4}", name):
            entry = bootentry.BootEntry(data=var.data)
            entries[name] = {"title": str(entry.title), "device_path": str(entry.devicepath)}
    return Varstore(
        str(path),
        variables,
        boot_entries=entries,
        boot_order=_boot_order(varlist),
        enrolled={n: _sigdb_count(varlist.get(n)) for n in KEY_NAMES if varlist.get(n)},
    )


def empty_varstore() -> Varstore:
    """What an unenrolled template (OVMF_VARS*.fd as distributions ship it) holds: nothing."""
    return Varstore("empty varstore", {})


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


class Certificates(Protocol):
    """PK, KEK and db certificates to enroll (composer/toolchain/secureboot.py's KeySet)."""

    @property
    def owner(self) -> str: ...

    def cert(self, name: str) -> Path: ...


def make_varstore(
    template: Path,
    dest: Path,
    *,
    keys: Certificates | None = None,
    boot_options: Sequence[BootOption] = (),
) -> None:
    """``dest`` = ``template`` + PK/KEK/db certificates and Secure Boot on (with ``keys``) +
    one Boot#### per option, in that order at the front of BootOrder. Written atomically."""
    store = _open(template)
    varlist = store.get_varlist()
    if keys is not None:
        for name in KEY_NAMES:
            varlist.add_cert(name, keys.owner, str(keys.cert(name)), True)
        varlist.enable_secureboot()  # SecureBootEnable=1, CustomMode=0, a dummy dbx
    for option in boot_options:
        index = varlist.add_boot_entry(option.title, option.device_path())
        if index is None:
            raise ComposerError(f"{template}: no free Boot#### variable")
        varlist.append_boot_order(index)
    with atomic_path(dest) as tmp:
        store.write_varstore(str(tmp), varlist)
