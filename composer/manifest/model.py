"""The image manifest, ``NAME.manifest.json``: the contract between `build`, which writes it
once, whole, and `boot`, which judges the image against it (and `inspect` of the cache,
`publish` of the next build of the same image).

The build makes one :class:`Manifest` from its stages' results (composer/build/image.py); a
cached image gets a copy with this build's ``cache`` and ``timings``. Readers validate every
file through the model (composer/manifest/load.py) after checking ``manifest_version``.
``composer/data/manifest.schema.json`` is the JSON schema of this model (a unit test keeps it
current): other tools can check a manifest without the composer.

Keys that a part leaves out when they do not apply (a varstore for images without one, the
signing details of unsigned images, the compression of formats other than qcow2, a
prediction's value when it could not be made) are left out of the file too.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from composer.blueprint.model import Loader
from composer.core.model import Model

MANIFEST_VERSION: Literal[1] = 1
SUFFIX = ".manifest.json"


class Part(Model):
    """A part of the manifest: fields named in ``OMIT_NONE`` are left out when None."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for key in self.OMIT_NONE:
            if isinstance(data, dict) and data.get(key, 0) is None:
                del data[key]
        return data


class Partition(Part):
    """A partition as the build made it (the dps-mounts check compares the booted guest)."""

    number: int
    designator: str  # DPS designator: root, usr, esp, ...; linux-generic for others
    type_name: str
    type_uuid: str
    uuid: str
    label: str  # GPT partition name
    offset: int  # bytes
    size: int  # bytes
    filesystem: str
    fs_uuid: str
    mountpoint: str
    flags: list[str]  # DPS flags: no-auto, read-only, grow-fs
    attrs: int  # GPT attribute bits
    fstab: bool  # mounted through an fstab line, not discovered
    read_only: bool


class Disk(Part):
    size: int
    guid: str
    partitions: list[Partition]
    fstab: list[str]  # the lines the image's /etc/fstab has


class Boot(Part):
    loader: Loader
    timeout: int | None  # menu seconds; None: no menu (uki-direct)
    binaries: list[str]  # ESP paths of the boot loader's binaries


class SecureBoot(Part):
    OMIT_NONE = frozenset(
        {"keys", "generated", "owner_guid", "certificates_sha256", "signed_files"}
    )

    signed: bool
    keys: str | None = None  # the key directory (no key material anywhere in the manifest)
    generated: bool | None = None
    owner_guid: str | None = None
    certificates_sha256: dict[str, str] | None = None  # PK, KEK, db -> DER sha256
    signed_files: list[str] | None = None  # ESP paths


class Varstore(Part):
    """The OVMF varstore shipped beside the image (Secure Boot keys, a Boot#### entry)."""

    file: str  # a plain file name in the manifest's directory
    sha256: str
    firmware_code: str  # the firmware code file it pairs with
    firmware_descriptor: str
    template: str
    secure_boot: bool
    enrolled: dict[str, int]  # PK, KEK, db -> number of certificates
    boot_entries: dict[str, dict[str, str]]  # Boot#### -> title, device_path
    boot_order: list[str]


class Uki(Part):
    path: str  # on the ESP
    sha256: str
    size: int
    kernel_version: str
    cmdline: str


class Output(Part):
    OMIT_NONE = frozenset({"compression"})

    file: str  # NAME.<format> beside the manifest
    format: str
    size: int
    allocated: int
    sha256: str
    qemu_format: str | None  # QEMU's driver; None: compressed raw (decompress to use)
    virtual_size: int
    checked: str  # what was checked, in words
    compression: str | None = None  # qcow2 only


class SealedVolume(Part):
    """A volume systemd-repart creates and LUKS2-encrypts at first boot, bound by a TPM2 token
    to the UKI's signed PCR policy, unlocked by the TPM at later boots."""

    designator: str  # srv, home
    type_uuid: str  # its DPS type: how systemd-gpt-auto-generator finds it
    mountpoint: str
    size: int  # bytes


class PcrPolicy(Part):
    """The UKI's signed PCR 11 policy (.pcrsig, .pcrpkey), read back from the built UKI: the
    phases a valid signature covers were recomputed from its sections (composer/measure/pcrsig.py)."""

    bank: str
    public_key_sha256: str  # systemd's pkfp of .pcrpkey
    keys: str  # the key directory
    generated: bool  # the default pair, made by this build
    signed_phases: list[str]
    sealed: list[SealedVolume]
    # "console": each sealed volume gets a recovery key at first boot, shown once on the
    # console (composer/rootfs/sealed.py); "none": no way in but the TPM
    recovery: str = "none"


class Expect(Part):
    """What `boot` checks."""

    OMIT_NONE = frozenset({"pcr_policy", "sealed"})

    root_type_uuid: str
    tpm: bool
    secure_boot: bool | None  # None: either
    pcrs: dict[str, str]  # PCR number -> value (sha256 bank) once the system is up
    dps_mounts: bool  # every partition mounted where DPS (or its fstab line) puts it
    grow_root: bool  # / fills the disk after first boot
    # the .pcrpkey fingerprint the booted UKI must export; None: no signed policy
    pcr_policy: str | None = None
    sealed: list[str] | None = None  # designators of volumes the TPM must unlock


class Pcr11(Part):
    phases: dict[str, dict[str, str]]  # bank -> boot phase path -> PCR 11
    booted_phase: str


class Validate(Part):
    timeout: float  # seconds a boot may take


class Event(Part):
    pcr: int
    type: str  # EV_* name
    digest: str
    what: str


class MeasuredPcr(Part):
    OMIT_NONE = frozenset({"value", "events", "error"})

    value: str | None = None
    events: list[Event] | None = None
    enforced: bool  # in expect.pcrs (proven on a real boot), else only reported
    error: str | None = None  # why no prediction could be made


class MeasuredBoot(Part):
    """Every predicted firmware and stub event (composer/measure/predict.py)."""

    bank: str
    varstore: str
    secure_boot: bool
    boot_chain: list[str]
    pcrs: dict[str, MeasuredPcr]
    proof: str


class Composer(Part):
    """The composer that built the image: its version and, from a git checkout, the commit."""

    version: str
    commit: str | None  # None: an installed package, not a checkout


class Manifest(Part):
    """One image as its build made it: the plan's layout, the UKI, the packages, every output
    with its sha256, the boot chain and Secure Boot setup, and what a boot of it must show."""

    OMIT_NONE = frozenset({"varstore", "composer", "pcr_policy"})

    manifest_version: Literal[1]
    name: str
    version: str
    architecture: str
    distro: str
    seed: str
    disk: Disk
    boot: Boot
    uki: Uki
    packages: dict[str, str]  # installed package -> version
    outputs: list[Output]
    expect: Expect
    pcr11: Pcr11
    validate_: Validate = Field(alias="validate")
    # users whose password the build generated: OUTPUT/NAME.USER.password (mode 0600)
    generated_passwords: list[str]
    timings: dict[str, float]  # stage -> seconds
    secureboot: SecureBoot
    varstore: Varstore | None = None
    package_pins: dict[str, str]  # the blueprint's version globs, as resolved
    source_date_epoch: int | None
    measured_boot: MeasuredBoot
    cache: dict[str, str]  # cached stage -> hit, miss, off
    composer: Composer | None = None  # left out by builds before it was recorded
    pcr_policy: PcrPolicy | None = None  # [measured] sign_policy

    model_config = ConfigDict(populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    def output(self, file_name: str) -> Output | None:
        """The output entry of ``file_name``, None when the manifest lists no such file."""
        return next((o for o in self.outputs if o.file == file_name), None)

    def files(self) -> list[str]:
        """Every file the manifest vouches for beside it: the outputs and the varstore."""
        return [o.file for o in self.outputs] + ([self.varstore.file] if self.varstore else [])
