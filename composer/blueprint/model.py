"""The blueprint's typed model: osbuild image-builder's keys plus [boot], [secureboot],
[measured], [image], [validate]; frozen, every value checked as it is read
(composer/blueprint/load.py reads it)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from composer.blueprint.customizations import Customizations
from composer.blueprint.disk import Size
from composer.blueprint.packages import Container, EnabledModule, Package, PackageGroup
from composer.blueprint.text import located
from composer.blueprint.values import no_control
from composer.core.errors import BlueprintError, Problem
from composer.core.model import Model
from composer.core.units import parse_duration
from composer.spec.arch import ARCHES
from composer.target.distros import DISTROS

Duration = Annotated[
    float, BeforeValidator(parse_duration, json_schema_input_type=int | float | str)
]
OneLine = Annotated[str, AfterValidator(no_control)]  # reaches a file or a command line

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SUPPORTED_DISTROS = tuple(DISTROS)  # what `build` can make (apt: mmdebstrap, dnf: dnf)
# Accepted by the loader too, for `dps-composer kickstart` (anaconda installs); `plan`/`build`
# reject the releases composer/target/distros.py does not know (composer/plan/plan.py, naming `distro`).
KICKSTART_DISTRO = re.compile(r"^fedora-(\d{2,3})$")

Loader = Literal["systemd-boot", "grub2", "uki-direct"]
# Output formats by file suffix (composer/image/formats.py FORMATS: how each is made and checked).
OutputFormat = Literal["raw", "raw.zst", "raw.xz", "qcow2", "vmdk", "vhdx", "vhd"]
Qcow2Compression = Literal["zstd", "zlib", "none"]


class Boot(Model):
    loader: Loader = "systemd-boot"
    cmdline: OneLine = "console=tty0 console=ttyS0"
    # Menu timeout in seconds; default 0 for systemd-boot, 1 for grub2 (its menu shows on serial).
    timeout: int | None = Field(default=None, ge=0, le=600)

    @field_validator("timeout")
    @classmethod
    def _timeout_needs_menu(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("loader") == "uki-direct":
            raise ValueError(
                'loader "uki-direct" has no boot menu (the firmware starts the UKI); '
                "remove boot.timeout or choose systemd-boot or grub2"
            )
        return v


class SecureBoot(Model):
    sign: bool = False
    keys: OneLine | None = None  # key directory (PK, KEK, db); relative to the blueprint file

    @model_validator(mode="after")
    def _keys_need_sign(self) -> SecureBoot:
        if self.keys is not None and not self.sign:
            raise ValueError("keys is set but sign is false: set sign = true to sign with them")
        if self.keys is not None and not self.keys.strip():
            raise ValueError("keys: give a directory, or leave it out for the default")
        return self


# What a sealed volume may be: a partition type systemd-gpt-auto-generator finds, unlocks
# (LUKS2, tpm2-device=auto) and mounts in the booted system without an fstab line or a machine
# ID (systemd-gpt-auto-generator(8): /home and /srv; /var needs the machine ID's HMAC as its
# partition UUID, root and /usr are unlocked in the initrd before repart could create them).
Sealable = Literal["srv", "home"]


class Measured(Model):
    """Measured boot beyond prediction: a signed PCR 11 policy in the UKI (ukify
    --pcr-private-key, systemd-measure sign) and volumes sealed to it."""

    sign_policy: bool = False
    # directory holding tpm2-pcr-private-key.pem and tpm2-pcr-public-key.pem (dps-composer
    # keys generate); relative to the blueprint file; default: a key pair in the cache
    keys: OneLine | None = None
    # partitions created and LUKS2-encrypted at first boot by systemd-repart (Encrypt=tpm2),
    # bound to the signed policy; unlocked by the TPM at later boots (docs/measured.md)
    sealed: tuple[Sealable, ...] = ()
    sealed_size: Size = 64 * 1024**2
    # "none": the TPM and a UKI signed by the key are the only way in; "console": at first
    # boot each sealed volume gets a recovery key (systemd-cryptenroll --recovery-key), shown
    # once on the console and asked for when the TPM refuses
    recovery: Literal["none", "console"] = "none"

    @model_validator(mode="after")
    def _needs_policy(self) -> Measured:
        if self.keys is not None and not self.sign_policy:
            raise ValueError(
                "keys is set but sign_policy is false: set sign_policy = true to sign with them"
            )
        if self.keys is not None and not self.keys.strip():
            raise ValueError("keys: give a directory, or leave it out for the default")
        if self.sealed and not self.sign_policy:
            raise ValueError(
                "sealed volumes are bound to the signed PCR policy: set sign_policy = true"
            )
        if len(set(self.sealed)) != len(self.sealed):
            raise ValueError("sealed: name each partition once")
        if self.recovery != "none" and not self.sealed:
            raise ValueError(
                f'recovery = "{self.recovery}" is for sealed volumes: name them in sealed, '
                "or leave recovery out"
            )
        return self


class Image(Model):
    size: Size = 2 * 1024**3
    esp_size: Size = 256 * 1024**2
    formats: tuple[OutputFormat, ...] = ("raw", "qcow2")
    qcow2_compression: Qcow2Compression = "zstd"
    seed: str | None = None
    # Baked into /etc/machine-id (every VM then shares it); needed by a DPS /var partition.
    machine_id: str | None = None

    @field_validator("machine_id")
    @classmethod
    def _machine_id(cls, v: str | None) -> str | None:
        if v is not None and (not re.fullmatch(r"[0-9a-f]{32}", v) or v == "0" * 32):
            raise ValueError(f"{v!r}: a machine ID is 32 lower-case hex digits, not all zero")
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one output format")
        return tuple(dict.fromkeys(v))


class Validate(Model):
    timeout: Duration = 600.0
    tpm: bool = True


DEFAULT_DISTRO = "debian-13"


def _default_distro(v: Any) -> Any:
    # osbuild: an empty distro is the default distribution (osbuild/blueprint
    # pkg/blueprint/blueprint.go: `distro` is omitempty; the image builder picks its default)
    return DEFAULT_DISTRO if v == "" else v


class Blueprint(Model):
    name: str
    description: str = ""  # free text: only ever written escaped (JSON, kickstart comments)
    version: OneLine = "0.0.1"
    distro: Annotated[str, BeforeValidator(_default_distro)] = DEFAULT_DISTRO
    architecture: str = "x86_64"
    packages: tuple[Package, ...] = ()
    modules: tuple[Package, ...] = ()  # osbuild resolves these as packages, and so do we
    enabled_modules: tuple[EnabledModule, ...] = ()  # which targets take them: keytable.py
    groups: tuple[PackageGroup, ...] = ()
    containers: tuple[Container, ...] = ()
    minimal: bool = False  # osbuild: no weak dependencies; Debian images never get Recommends
    customizations: Customizations = Customizations()
    boot: Boot = Boot()
    secureboot: SecureBoot = SecureBoot()
    measured: Measured = Measured()
    image: Image = Image()
    validate_: Validate = Field(default=Validate(), alias="validate")
    # where it was read from: errors found after parsing still name the file and the line
    _file: str = PrivateAttr(default="<blueprint>")
    _text: str = PrivateAttr(default="")

    def error(self, problems: list[Problem]) -> BlueprintError:
        """One error naming every problem with its file, line, key and reason."""
        return located(self._file, self._text, problems)

    def located_at(self, file: str, text: str) -> Blueprint:
        """This blueprint, remembering the file and text it was read from (for errors)."""
        self._file, self._text = file, text
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r}: use letters, digits, '.', '_' and '-' (it names the files)")
        return v

    @field_validator("distro")
    @classmethod
    def _distro(cls, v: str) -> str:
        if v not in SUPPORTED_DISTROS and not KICKSTART_DISTRO.match(v):
            raise ValueError(
                f"{v!r} is not supported; supported: {', '.join(SUPPORTED_DISTROS)} "
                "(build), fedora-<release> such as fedora-44 (kickstart only)"
            )
        return v

    @field_validator("architecture")
    @classmethod
    def _arch(cls, v: str) -> str:
        if v not in ARCHES:
            raise ValueError(f"{v!r} is not supported; supported: {', '.join(ARCHES)}")
        return v
