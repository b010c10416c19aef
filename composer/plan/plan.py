"""Blueprint -> Plan: a pure, deterministic description of the image to build.

No I/O here. Everything random in an image (disk GUID, partition UUIDs, file-system UUIDs,
hash seeds) is derived from one seed, so the same blueprint always gives the same plan.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from composer.blueprint.customizations import Customizations
from composer.blueprint.model import SUPPORTED_DISTROS, Blueprint, Loader
from composer.core.errors import Problem, UsageError
from composer.plan.judgement import judge
from composer.plan.keydirs import shape_problems
from composer.plan.layout import LayoutErrors, PartitionPlan, layout_of, seed_of
from composer.plan.load import parse
from composer.spec.arch import Arch, get_arch
from composer.target.distros import KERNEL_UKI_VIRT, UKI_VIRT, Distro, get_distro

# Menu timeout (s) when the blueprint gives none: systemd-boot boots at once (a key still
# reaches the menu); GRUB shows its menu for a second so the serial log records it.
DEFAULT_LOADER_TIMEOUT = {"systemd-boot": 0, "grub2": 1, "uki-direct": 0}


@dataclass(frozen=True)
class Plan:
    name: str
    version: str
    description: str
    architecture: str
    distro: str
    suite: str
    mirror: str
    os_id: str
    seed: str
    disk_size: int
    disk_guid: str
    partitions: tuple[PartitionPlan, ...]
    packages: tuple[str, ...]
    customizations: Customizations
    loader: Loader
    loader_timeout: int
    cmdline: str
    formats: tuple[str, ...]
    validate_timeout: float
    validate_tpm: bool
    qcow2_compression: str = "zstd"
    secureboot_sign: bool = False
    secureboot_keys: str | None = None  # None: the default key directory in the cache
    pcr_policy: bool = False  # the UKI carries a signed PCR 11 policy (.pcrsig, .pcrpkey)
    pcr_keys: str | None = None  # None: the default PCR key pair in the cache
    sealed: tuple[str, ...] = ()  # designators of the volumes sealed at first boot
    sealed_size: int = 64 * 1024**2
    recovery: str = "none"  # none | console: a recovery key per sealed volume, shown once
    package_pins: tuple[tuple[str, str], ...] = ()  # (name, version glob), resolved at build
    fstab: tuple[str, ...] = ()  # lines for the partitions DPS does not discover
    grow_root: bool = False  # root grows into a bigger disk at first boot (systemd-repart)
    machine_id: str | None = None
    notes: tuple[str, ...] = ()  # what the composer decided for the blueprint, in words
    package_origins: tuple[tuple[str, str], ...] = ()  # (package, the key asking for it)

    def package_key(self, name: str) -> str:
        """The blueprint key that put ``name`` into the image ("packages" if none did)."""
        origin = dict(self.package_origins).get(name, "base")
        return "packages" if origin == "base" else origin

    @property
    def arch(self) -> Arch:
        return get_arch(self.architecture)

    @property
    def distribution(self) -> Distro:
        return get_distro(self.distro)

    def partition(self, designator: str) -> PartitionPlan:
        return next(p for p in self.partitions if p.designator == designator)

    @property
    def root_type_uuid(self) -> str:
        return self.partition("root").type_uuid

    def derive(self, purpose: str) -> uuid.UUID:
        """A UUID for ``purpose``, fixed by the plan's seed."""
        return derive_uuid(uuid.UUID(self.seed), purpose)

    def output_name(self, fmt: str) -> str:
        return f"{self.name}.{fmt}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["customizations"] = self.customizations.masked_dump()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def derive_uuid(seed: uuid.UUID, purpose: str) -> uuid.UUID:
    return uuid.uuid5(seed, purpose)


def make_plan(bp: Blueprint, file: str = "<blueprint>") -> Plan:
    """The plan of ``bp``; every problem the target's facts reveal is a BlueprintError naming
    its key (what the archive decides is checked after package resolution)."""
    source = bp._file if bp._file != "<blueprint>" else file
    arch = get_arch(bp.architecture)
    if bp.distro not in SUPPORTED_DISTROS:
        raise bp.error([Problem(
            "distro",
            f"{bp.distro!r} cannot be built: dps-composer knows no repositories for that "
            f"release; build supports {', '.join(SUPPORTED_DISTROS)} (apt: mmdebstrap, dnf: "
            "dnf --installroot). `dps-composer kickstart` renders an anaconda kickstart for it.",
        )])  # fmt: skip
    distro = get_distro(bp.distro)
    seed = seed_of(bp)
    verdict = judge(bp, distro)
    if verdict.problems:
        raise bp.error(verdict.problems)
    try:
        layout = layout_of(bp, seed)
    except LayoutErrors as exc:
        raise bp.error(
            [Problem(".".join(map(str, e.key)), e.message) for e in exc.errors]
        ) from None
    origins = _package_origins(bp, distro, arch, verdict.packages, layout.partitions, layout.grows)
    packages = tuple(dict.fromkeys(name for name, _ in origins))
    if problems := [*shape_problems(bp), *measured_problems(bp, packages, layout.partitions)]:
        raise bp.error(problems)
    pins = tuple((p.name, p.version) for p in (*bp.packages, *bp.modules) if p.pinned)
    cmdline = " ".join(f"{bp.boot.cmdline} {bp.customizations.kernel.append}".split())
    notes = [*verdict.notes, *_layout_notes(layout.partitions)]
    return Plan(
        name=bp.name,
        version=bp.version,
        description=bp.description,
        architecture=arch.name,
        distro=distro.id,
        suite=distro.suite,
        mirror=distro.mirror,
        os_id=distro.os_id,
        seed=str(seed),
        disk_size=layout.disk_size,
        disk_guid=str(derive_uuid(seed, "disk")),
        partitions=layout.partitions,
        packages=packages,
        customizations=bp.customizations,
        loader=bp.boot.loader,
        loader_timeout=(
            DEFAULT_LOADER_TIMEOUT[bp.boot.loader] if bp.boot.timeout is None else bp.boot.timeout
        ),
        cmdline=cmdline,
        formats=bp.image.formats,
        validate_timeout=bp.validate_.timeout,
        validate_tpm=bp.validate_.tpm,
        qcow2_compression=bp.image.qcow2_compression,
        secureboot_sign=bp.secureboot.sign,
        secureboot_keys=_keys_dir(bp.secureboot.keys, source),
        pcr_policy=bp.measured.sign_policy,
        pcr_keys=_keys_dir(bp.measured.keys, source),
        sealed=bp.measured.sealed,
        sealed_size=bp.measured.sealed_size,
        recovery=bp.measured.recovery,
        package_pins=pins,
        fstab=layout.fstab,
        grow_root=layout.grows,
        machine_id=bp.image.machine_id,
        notes=tuple(notes),
        package_origins=tuple(_first_origin(origins).items()),
    )


# systemd-repart makes the sealed volumes at first boot; Debian ships systemd-cryptsetup (and
# its generators) apart from systemd; cryptsetup-bin for inspecting them; mkfs.ext4 for
# formatting them (systemd-repart runs the image's own mkfs)
SEALING_PACKAGES = ("systemd-repart", "systemd-cryptsetup", "cryptsetup-bin", "e2fsprogs")
UKI_VIRT_PACKAGES = (UKI_VIRT, KERNEL_UKI_VIRT)


def measured_problems(
    bp: Blueprint, packages: tuple[str, ...], partitions: tuple[PartitionPlan, ...]
) -> list[Problem]:
    """[measured] against the rest of the blueprint: a prebuilt UKI cannot be given a PCR
    signature, and a sealed volume is made at first boot, so the layout must not have it."""
    m, out = bp.measured, []
    prebuilt = [p for p in UKI_VIRT_PACKAGES if p in packages]
    if m.sign_policy and prebuilt:
        out.append(Problem(
            "measured.sign_policy",
            f"the image boots the prebuilt UKI of {prebuilt[0]}, which has no PCR signature by "
            "your key; leave uki-virt out (the UKI is then built with the signature) or set "
            "sign_policy = false",
        ))  # fmt: skip
    laid_out = {p.designator for p in partitions}
    for i, name in enumerate(m.sealed):
        if name in laid_out:
            out.append(Problem(
                f"measured.sealed[{i}]",
                f"/{name} is also a partition of [customizations.disk]: a sealed volume is "
                "created at first boot; remove one of the two",
            ))  # fmt: skip
    return out


def _first_origin(origins: list[tuple[str, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for name, key in origins:
        first.setdefault(name, key)
    return first


def _package_origins(
    bp: Blueprint,
    distro: Distro,
    arch: Arch,
    needed: list[tuple[str, str]],
    partitions: tuple[PartitionPlan, ...],
    grows: bool,
) -> list[tuple[str, str]]:
    """(package, why it is in the image: the blueprint key that asks for it, or "base")."""
    c = bp.customizations
    out = [(p, "base") for p in distro.base_packages(arch)
           if not (c.kernel.name and p.startswith("linux-image-"))]  # fmt: skip
    if c.kernel.name:
        out.append((c.kernel.name, "customizations.kernel.name"))
    out += needed
    out += [(p, "customizations.disk") for p in _fs_packages(partitions)]
    out += [("systemd-repart", "base")] if grows else []
    out += [(p, "measured.sealed") for p in SEALING_PACKAGES if bp.measured.sealed]
    for table in ("packages", "modules"):
        out += [(p.name, f"{table}[{i}]") for i, p in enumerate(getattr(bp, table))]
    out += [(f"@{g.name}", f"groups[{i}]") for i, g in enumerate(bp.groups)]  # dnf only
    return out


def _layout_notes(partitions: tuple[PartitionPlan, ...]) -> list[str]:
    notes = []
    for p in partitions:
        if p.designator == "var" and p.fstab:
            notes.append(
                "/var: mounted by an fstab line (UUID=…), as osbuild does: DPS mounts /var only "
                "when its partition UUID is the HMAC of the machine ID; set [image] machine_id "
                "for discovery"
            )
        elif p.designator == "swap" and p.fstab:
            notes.append(f"swap partition {p.number}: enabled by an fstab line (with several "
                         "swap partitions, systemd's gpt-auto generator enables none)")  # fmt: skip
    return notes


def _fs_packages(partitions: tuple[PartitionPlan, ...]) -> list[str]:
    """Tools for the file systems in the image (fsck, growfs helpers, repair)."""
    tools = {"xfs": "xfsprogs", "btrfs": "btrfs-progs", "erofs": "erofs-utils"}
    return sorted({tools[p.filesystem] for p in partitions if p.filesystem in tools})


def _keys_dir(keys: str | None, file: str) -> str | None:
    """A key directory is relative to the blueprint file (pure path arithmetic; where it may
    be: composer/plan/keydirs.py)."""
    if keys is None:
        return None
    if file.startswith("<"):
        return keys
    return str(PurePath(file).parent / keys)


def with_key_dirs(plan: Plan, keys: Path | None, pcr_keys: Path | None) -> Plan:
    """``plan`` with the key directories given on the command line (absolute, as given: the
    invoker's choice); an option the blueprint has no use for is refused (exit 2)."""
    if keys is not None and not plan.secureboot_sign:
        raise UsageError(
            f"--keys {keys}: the blueprint signs nothing; set [secureboot] sign = true"
        )
    if pcr_keys is not None and not plan.pcr_policy:
        raise UsageError(
            f"--pcr-keys {pcr_keys}: the blueprint has no signed PCR policy; set [measured] "
            "sign_policy = true"
        )
    sb = str(keys.absolute()) if keys is not None else plan.secureboot_keys
    pcr = str(pcr_keys.absolute()) if pcr_keys is not None else plan.pcr_keys
    return dataclasses.replace(plan, secureboot_keys=sb, pcr_keys=pcr)


def plan_text(text: str, file: str = "<blueprint>") -> Plan:
    """The plan of blueprint text; every refusal names the file, the line and the key."""
    return make_plan(parse(text, file), file)
