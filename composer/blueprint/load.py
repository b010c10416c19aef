"""Blueprint: osbuild image-builder TOML plus [boot], [image], [validate]; typed and frozen."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from composer.blueprint.customizations import Customizations
from composer.blueprint.lines import dotted
from composer.blueprint.packages import Container, EnabledModule, Package, PackageGroup
from composer.blueprint.text import check_depth, read_blueprint, too_deep
from composer.blueprint.text import line_for as _line
from composer.blueprint.values import no_control
from composer.core.errors import BlueprintError, Problem
from composer.core.units import parse_duration, parse_size
from composer.plan.layout import Layout, LayoutErrors
from composer.plan.layout import compute as compute_layout
from composer.spec.arch import ARCHES
from composer.target.distros import DISTROS
from composer.target.hierarchy import crossed_link

Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
OneLine = Annotated[str, AfterValidator(no_control)]  # reaches a file or a command line

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SUPPORTED_DISTROS = tuple(DISTROS)  # what `build` can make (apt: mmdebstrap, dnf: dnf)
# Accepted by the loader too, for `dps-composer kickstart` (anaconda installs); `plan`/`build`
# reject the releases composer/target/distros.py does not know (composer/plan/plan.py, naming `distro`).
KICKSTART_DISTRO = re.compile(r"^fedora-(\d{2,3})$")

Loader = Literal["systemd-boot", "grub2", "uki-direct"]
# Output formats by file suffix (composer/build/outputs.py knows how to make and check each).
OutputFormat = Literal["raw", "raw.zst", "raw.xz", "qcow2", "vmdk", "vhdx", "vhd"]
Qcow2Compression = Literal["zstd", "zlib", "none"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
    image: Image = Image()
    validate_: Validate = Field(default=Validate(), alias="validate")
    # where it was read from: errors found after parsing still name the file and the line
    _file: str = PrivateAttr(default="<blueprint>")
    _text: str = PrivateAttr(default="")

    def error(self, problems: list[Problem]) -> BlueprintError:
        """One error naming every problem with its file, line, key and reason."""
        return located(self._file, self._text, problems)

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


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuplify(v) for k, v in value.items()}
    return value


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (for listing valid keys)."""
    model: type[BaseModel] = Blueprint
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        args = get_args(field.annotation)
        inner = args[0] if args else field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
        else:
            return None
    return model


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        model = _model_at(loc)
        valid = sorted((f.alias or n) for n, f in model.model_fields.items()) if model else []
        return "unknown key" + (f"; valid keys here: {', '.join(valid)}" if valid else "")
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return msg
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a table"
    return f"{msg} (got {type(value).__name__} {shown})"


def _loc(err: dict[str, Any]) -> tuple[str | int, ...]:
    # pydantic appends pseudo-locations for unions and literals; drop them.
    return tuple(
        p for p in err["loc"] if isinstance(p, int) or not p.startswith(("literal[", "function-"))
    )


def parse(text: str, file: str = "<blueprint>") -> Blueprint:
    """Parse and validate blueprint TOML text; every error names file, line, key and reason."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise BlueprintError(
            file, int(m.group(1)) if m else 1, "", f"not valid TOML: {exc}"
        ) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise too_deep(text, file) from None
    check_depth(data, text, file)
    try:
        bp = Blueprint.model_validate(_tuplify(data))
    except ValidationError as exc:
        problems = [Problem(dotted(_loc(dict(e))), _describe(dict(e))) for e in exc.errors()]
        raise located(file, text, problems) from None
    bp._file, bp._text = file, text
    try:
        layout_of(bp)
    except LayoutErrors as exc:
        raise bp.error([Problem(dotted(e.key), e.message) for e in exc.errors]) from None
    problems = _mountpoint_links(bp)
    if problems:
        raise bp.error(problems)
    return bp


def _mountpoint_links(bp: Blueprint) -> list[Problem]:
    """A mount point may not cross a directory link of the target's tree (/var/run -> /run):
    the build splits the tree at real directories only (composer/target/hierarchy.py)."""
    c = bp.customizations
    entries: list[tuple[tuple[str | int, ...], str | None]] = [
        (("customizations", "filesystem", i), f.mountpoint) for i, f in enumerate(c.filesystem)
    ]
    if c.disk is not None:
        entries += [
            (("customizations", "disk", "partitions", i), p.mountpoint)
            for i, p in enumerate(c.disk.partitions)
        ]
    problems = []
    for key, mountpoint in entries:
        link = crossed_link(bp.distro, mountpoint) if mountpoint else None
        if link is not None:
            problems.append(Problem(
                dotted((*key, "mountpoint")),
                f"{mountpoint} crosses the link {link} of {bp.distro}'s root tree; a mount "
                "point must be a real directory: use the link's target",
            ))  # fmt: skip
    return problems


def located(file: str, text: str, problems: list[Problem]) -> BlueprintError:
    """A BlueprintError for ``problems`` (keys without lines), each with its line in ``text``;
    the same key is named once."""
    seen: dict[tuple[str, str], Problem] = {}
    for p in problems:
        line = _line(text, _parse_dotted(p.key)) if text else None
        seen.setdefault((p.key, p.message), Problem(p.key, p.message, line))
    first, *others = sorted(seen.values(), key=lambda p: p.line or 0)
    return BlueprintError(file, first.line, first.key, first.message, others)


def _parse_dotted(key: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return tuple(out)


def layout_of(bp: Blueprint, seed: UUID | None = None) -> Layout:
    """The partition layout of a blueprint (pure; raises LayoutErrors naming key paths)."""
    c = bp.customizations
    return compute_layout(
        disk=c.disk,
        filesystems=c.filesystem,
        arch=ARCHES[bp.architecture],
        seed=seed or uuid5(NAMESPACE_URL, f"dps-composer:{bp.name}"),
        image_size=bp.image.size,
        esp_size=bp.image.esp_size,
        name=bp.name,
        version=bp.version,
        machine_id=bp.image.machine_id,
        size_given="size" in bp.image.model_fields_set,
        formats=bp.image.formats,
    )


def load(path: Path) -> Blueprint:
    return _read_uris(parse(read_blueprint(path), str(path)), path)


def _read_uris(bp: Blueprint, path: Path) -> Blueprint:
    """[[customizations.files]] ``uri`` (file:///, as osbuild) read into ``data``: the plan
    carries the content, so the build and its cache key see it.

    On a shared build host a blueprint must not copy the host's files into an image (a key,
    /etc/shadow): the file must lie in the blueprint's own directory tree (after resolving
    links) and be a regular file of a blueprint's size."""
    files = list(bp.customizations.files)
    problems = []
    base = path.resolve().parent
    for i, f in enumerate(files):
        if not f.uri:
            continue
        key = f"customizations.files[{i}].uri"
        named = f.uri.removeprefix("file://") if f.uri.startswith("file://") else f.uri[5:]
        source = base / named
        try:
            real = source.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            problems.append(Problem(key, f"cannot read {source}: {getattr(exc, 'strerror', exc)}"))
            continue
        if not real.is_relative_to(base):
            problems.append(Problem(
                key,
                f"{source} is outside the blueprint's directory {base}: on a shared build host "
                "a blueprint may only take files that lie beside it",
            ))  # fmt: skip
            continue
        try:
            data = read_blueprint(real)
        except BlueprintError as exc:
            problems.append(Problem(key, f"cannot read {source}: {exc.message}"))
            continue
        files[i] = f.model_copy(update={"data": data, "uri": ""})
    if problems:
        raise bp.error(problems)
    if files == list(bp.customizations.files):
        return bp
    c = bp.customizations.model_copy(update={"files": tuple(files)})
    out = bp.model_copy(update={"customizations": c})
    out._file, out._text = bp._file, bp._text
    return out
