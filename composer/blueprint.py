"""Blueprint: osbuild image-builder TOML plus [boot], [image], [validate]; typed and frozen."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from composer.arch import ARCHES
from composer.errors import BlueprintError
from composer.tomlpos import dotted, line_of
from composer.units import parse_duration, parse_size

Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[float, BeforeValidator(parse_duration)]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_CRYPT = re.compile(r"^\$(1|5|6|y|gy|7|2[abxy]?)\$[./A-Za-z0-9$=,]+$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")

SUPPORTED_DISTROS = ("debian-13",)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Package(Model):
    name: str
    version: str = "*"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _PACKAGE.match(v):
            raise ValueError(f"{v!r} is not a package name")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if v not in ("*", ""):
            raise ValueError(
                f"version {v!r}: only '*' (the archive's current version) is supported for "
                "Debian targets; pin by listing the package without a version"
            )
        return "*"


class Kernel(Model):
    name: str | None = None
    append: str = ""

    @field_validator("append")
    @classmethod
    def _no_root(cls, v: str) -> str:
        for word in v.split():
            if word.startswith(("root=", "mount.usr=", "rootflags=")):
                raise ValueError(
                    f"{word!r}: the root file system is found by its DPS partition type; "
                    "do not set root= on the command line"
                )
        return v


class User(Model):
    name: str
    description: str = ""
    password: str | None = None
    key: str | None = None
    home: str | None = None
    shell: str | None = None
    groups: tuple[str, ...] = ()
    uid: int | None = None
    gid: int | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _USER.match(v):
            raise ValueError(f"{v!r} is not a valid user name (lower case, digits, _ and -)")
        return v

    @field_validator("password")
    @classmethod
    def _crypt(cls, v: str | None) -> str | None:
        if v is not None and not _CRYPT.match(v):
            raise ValueError(
                "must be a crypt(3) hash such as '$y$…' or '$6$…' "
                "(make one with: mkpasswd -m yescrypt, or openssl passwd -6)"
            )
        return v


class Group(Model):
    name: str
    gid: int | None = None


class SshKey(Model):
    user: str
    key: str


class Timezone(Model):
    timezone: str | None = None
    ntpservers: tuple[str, ...] = ()


class Services(Model):
    enabled: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    masked: tuple[str, ...] = ()


class Customizations(Model):
    hostname: str | None = None
    kernel: Kernel = Kernel()
    user: tuple[User, ...] = ()
    group: tuple[Group, ...] = ()
    sshkey: tuple[SshKey, ...] = ()
    timezone: Timezone = Timezone()
    services: Services = Services()

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 253 or not _HOSTNAME.match(v)):
            raise ValueError(f"{v!r} is not a valid host name (RFC 1123)")
        return v


class Boot(Model):
    loader: Literal["systemd-boot"] = "systemd-boot"
    cmdline: str = "console=tty0 console=ttyS0"
    timeout: int = Field(default=0, ge=0, le=600)


class Image(Model):
    size: Size = 2 * 1024**3
    esp_size: Size = 256 * 1024**2
    formats: tuple[Literal["raw", "qcow2"], ...] = ("raw", "qcow2")
    seed: str | None = None

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one output format")
        return tuple(dict.fromkeys(v))


class Validate(Model):
    timeout: Duration = 600.0
    tpm: bool = True


class Blueprint(Model):
    name: str
    description: str = ""
    version: str = "0.0.1"
    distro: str = "debian-13"
    architecture: str = "x86_64"
    packages: tuple[Package, ...] = ()
    customizations: Customizations = Customizations()
    boot: Boot = Boot()
    image: Image = Image()
    validate_: Validate = Field(default=Validate(), alias="validate")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r}: use letters, digits, '.', '_' and '-' (it names the files)")
        return v

    @field_validator("distro")
    @classmethod
    def _distro(cls, v: str) -> str:
        if v not in SUPPORTED_DISTROS:
            raise ValueError(f"{v!r} is not supported; supported: {', '.join(SUPPORTED_DISTROS)}")
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
    """Parse and validate blueprint TOML text; errors name file, line and key path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise BlueprintError(
            file, int(m.group(1)) if m else None, "", f"not valid TOML: {exc}"
        ) from None
    try:
        return Blueprint.model_validate(_tuplify(data))
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = _loc(dict(first))
        message = _describe(dict(first))
        if len(errors) > 1:
            others = "; ".join(dotted(_loc(dict(e))) for e in errors[1:6])
            message += f" (also: {others})"
        raise BlueprintError(file, line_of(text, loc), dotted(loc), message) from None


def load(path: Path) -> Blueprint:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BlueprintError(str(path), None, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BlueprintError(str(path), None, "", "not UTF-8 text") from None
    return parse(text, str(path))
