"""The boot chain on the ESP, by ``[boot] loader``: systemd-boot, grub2 or uki-direct; with
``[secureboot] sign`` every PE binary the firmware or the loader starts is signed with the db
key, and a varstore with PK/KEK/db enrolled (and, for uki-direct, the Boot#### entry) is made
for the image. build.py calls :func:`stage_boot_chain` and nothing loader-specific."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from composer.blueprint.model import Loader
from composer.build.bootchain.grub import stage_grub
from composer.build.bootchain.systemd_boot import stage_systemd_boot
from composer.build.bootchain.uki_direct import boot_option, stage_uki_direct
from composer.core.hashing import sha256_file
from composer.core.log import note
from composer.image.firmware import Firmware, select_firmware
from composer.image.varstore import KEY_NAMES, BootOption, make_varstore, read_varstore
from composer.manifest import model as manifest
from composer.plan.plan import Plan
from composer.toolchain.secureboot import KeySet, ensure_keys, load_keys, sign_pe

LOG = logging.getLogger(__name__)


def default_keys_dir(cache: Path) -> Path:
    return cache / "keys" / "secureboot"


def secureboot_keys(plan: Plan, cache: Path) -> tuple[KeySet, bool]:
    """The keys a signed image uses: the blueprint's directory, which must exist and be
    complete (a typo must not silently sign with throw-away keys), else the default
    directory in the cache, generated the first time. (keys, generated)"""
    if plan.secureboot_keys:
        return load_keys(Path(plan.secureboot_keys)), False
    return ensure_keys(default_keys_dir(cache))


@dataclass
class BootChain:
    loader: Loader
    timeout: int | None
    loaders: list[str]  # ESP paths of the boot loader binaries (none for uki-direct)
    signed: list[str] = field(default_factory=list)  # ESP paths signed with the db key
    keys: KeySet | None = None
    keys_generated: bool = False
    varstore: Path | None = None
    firmware: Firmware | None = None  # the firmware the varstore was made for

    def boot(self) -> manifest.Boot:
        return manifest.Boot(loader=self.loader, timeout=self.timeout, binaries=self.loaders)

    def secureboot(self) -> manifest.SecureBoot:
        """What was signed with which keys (no key material)."""
        if self.keys is None:
            return manifest.SecureBoot(signed=False)
        return manifest.SecureBoot(
            signed=True,
            keys=str(self.keys.directory),
            generated=self.keys_generated,
            owner_guid=self.keys.owner,
            certificates_sha256={n: self.keys.cert_sha256(n) for n in KEY_NAMES},
            signed_files=list(self.signed),
        )

    def shipped_varstore(self) -> manifest.Varstore | None:
        """The varstore shipped beside the image, as the manifest describes it."""
        if self.varstore is None or self.firmware is None:
            return None
        store = read_varstore(self.varstore)
        return manifest.Varstore(
            file=self.varstore.name,
            sha256=sha256_file(self.varstore),
            firmware_code=str(self.firmware.code),
            firmware_descriptor=str(self.firmware.descriptor),
            template=str(self.firmware.vars_template),
            secure_boot=store.secure_boot_enable,
            enrolled=store.enrolled,
            boot_entries=store.boot_entries,
            boot_order=store.boot_order,
        )


def _rel(esp: Path, path: Path) -> str:
    return path.relative_to(esp).as_posix()


def stage_boot_chain(
    plan: Plan,
    esp: Path,
    tools_tree: Path,
    uki_path: Path,
    uki_rel: str,
    *,
    cache: Path,
    work: Path,
    varstore_dest: Path,
) -> BootChain:
    """Fill the ESP staging tree ``esp``: the UKI at ``uki_rel`` (signed in place at
    ``uki_path`` first when signing) and the loader; write the varstore when the chain needs
    one (uki-direct, or Secure Boot) to ``varstore_dest``."""
    arch = plan.arch
    keys: KeySet | None = None
    generated = False
    if plan.secureboot_sign:
        keys, generated = secureboot_keys(plan, cache)
        how = "generated" if generated else "existing"
        note(LOG, f"Secure Boot keys: {keys.directory} ({how})")
        sign_pe(uki_path, keys)
    (esp / uki_rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(uki_path, esp / uki_rel)
    signed = [uki_rel] if keys else []
    options: list[BootOption] = []
    if plan.loader == "systemd-boot":
        loaders = stage_systemd_boot(esp, tools_tree, arch.efi, plan.loader_timeout)
    elif plan.loader == "grub2":
        loaders = stage_grub(esp, tools_tree, arch, plan.loader_timeout, work / "grub")
    elif plan.loader == "uki-direct":
        fallback = stage_uki_direct(esp, uki_rel, arch.efi)  # a copy of the (signed) UKI
        signed += [_rel(esp, p) for p in fallback] if keys else []
        options.append(boot_option(plan, esp, uki_rel))
        loaders = []
    else:  # the blueprint's Literal keeps this out
        raise ValueError(f"unknown boot loader {plan.loader!r}")
    if keys is not None:
        for binary in loaders:
            sign_pe(binary, keys)
            signed.append(_rel(esp, binary))
    chain = BootChain(
        loader=plan.loader,
        timeout=None if plan.loader == "uki-direct" else plan.loader_timeout,
        loaders=[_rel(esp, p) for p in loaders],
        signed=signed,
        keys=keys,
        keys_generated=generated,
    )
    if keys is not None or options:
        fw = select_firmware(arch, arch.machine, secure_boot=keys is not None, enrolled_keys=False)
        make_varstore(fw.vars_template, varstore_dest, keys=keys, boot_options=options)
        chain.varstore, chain.firmware = varstore_dest, fw
    return chain
