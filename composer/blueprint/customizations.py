"""osbuild blueprint ``[customizations]``, as typed frozen models.

Every key of osbuild's schema is recognised (osbuild/blueprint pkg/blueprint/customizations.go).
Keys the composer implements are modelled and take effect in the image; which keys a target
(Debian image, Fedora image, kickstart) cannot honour is said by composer/plan/keytable.py, which
refuses their non-empty values naming the key and the reason: never dropped.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, field_validator, model_validator

from composer.blueprint.disk import Disk, Filesystem
from composer.blueprint.files import AbsPath, Directory, File, ImagePath
from composer.blueprint.repositories import Repository
from composer.blueprint.services import Firewall, Sshd
from composer.blueprint.values import control_char, no_control, not_option, unit_name
from composer.core.model import Model

_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")
_CRYPT = re.compile(r"^\$(1|5|6|y|gy|7|2[abxy]?)\$[./A-Za-z0-9$=,]+$")
_KERNEL_PKG = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_LOCALE = re.compile(r"^[A-Za-z]{1,8}(_[A-Za-z0-9]{2,3})?(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?$")


def is_crypt_hash(password: str) -> bool:
    return bool(_CRYPT.match(password))


Unit = Annotated[str, AfterValidator(unit_name)]


def _group_name(v: str) -> str:
    if not _USER.match(v):
        raise ValueError(f"{v!r} is not a valid group name (lower case, digits, _ and -)")
    return v


def _one_line(v: str) -> str:
    """Free text for a line of a passwd-style file: no control characters, no ':'."""
    no_control(v)
    if ":" in v:
        raise ValueError(f"{v!r}: ':' separates the fields of /etc/passwd; not allowed here")
    return v


def _key_line(v: str) -> str:
    """One OpenSSH public key: a line of authorized_keys (surrounding white space is fine)."""
    no_control(v.strip())
    return v


class Kernel(Model):
    name: str | None = None
    append: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v in (None, "", "kernel"):  # osbuild's default: the distribution's kernel
            return None
        assert v is not None
        if not _KERNEL_PKG.match(v):  # the target's own naming is checked by the loader
            raise ValueError(f"{v!r} is not a kernel package name")
        return v

    @field_validator("append")
    @classmethod
    def _no_root(cls, v: str) -> str:
        no_control(v)
        for word in v.split():
            if word.startswith(("root=", "mount.usr=", "rootflags=")):
                raise ValueError(
                    f"{word!r}: the root file system is found by its DPS partition type; "
                    "do not set root= on the command line"
                )
        return v


class User(Model):
    name: str
    description: Annotated[str, AfterValidator(_one_line)] = ""
    password: str | None = None  # a crypt(3) hash, or plain text hashed at build time
    key: Annotated[str, AfterValidator(_key_line)] | None = None
    home: Annotated[ImagePath, AfterValidator(_one_line)] | None = None
    shell: Annotated[AbsPath, AfterValidator(_one_line)] | None = None
    groups: tuple[Annotated[str, AfterValidator(_group_name)], ...] = ()
    uid: int | None = None
    gid: int | None = None
    expiredate: int | None = None  # days since 1970-01-01
    force_password_reset: bool = False
    # dps-composer extension: a password the build derives from its cache's secret and writes
    # to OUTPUT/NAME.USER.password (0600); see composer/core/secret.py
    generate_password: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _USER.match(v):
            raise ValueError(f"{v!r} is not a valid user name (lower case, digits, _ and -)")
        return v

    @field_validator("password")
    @classmethod
    def _password(cls, v: str | None) -> str | None:
        if v == "":
            return None  # osbuild: an empty password means none
        if v is not None and control_char(v) is not None:
            raise ValueError("a password cannot hold control characters (the value is not shown)")
        if v is not None and ":" in v and not is_crypt_hash(v):
            raise ValueError("a plain password cannot contain ':'")
        return v

    @field_validator("uid", "gid")
    @classmethod
    def _id(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v < 2**32 - 1:
            raise ValueError(f"{v} is not a valid numeric id")
        return v

    @field_validator("expiredate")
    @classmethod
    def _expire(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v <= 2932896:  # up to 9999-12-31
            raise ValueError(f"{v}: days since 1970-01-01, between 0 and 2932896")
        return v

    @model_validator(mode="after")
    def _one_password(self) -> User:
        if self.generate_password and self.password is not None:
            raise ValueError("give either password or generate_password = true, not both")
        return self

    @property
    def plain_password(self) -> bool:
        return self.password is not None and not is_crypt_hash(self.password)

    @property
    def expire_date(self) -> str | None:
        if self.expiredate is None:
            return None
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=self.expiredate)).isoformat()


class Group(Model):
    name: Annotated[str, AfterValidator(_group_name)]
    gid: int | None = None


class SshKey(Model):
    user: str
    key: Annotated[str, AfterValidator(_key_line)]

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not _USER.match(v):
            raise ValueError(f"{v!r} is not a valid user name (lower case, digits, _ and -)")
        return v


def _ntp_server(v: str) -> str:
    no_control(v)
    if any(c.isspace() for c in v):
        raise ValueError(f"{v!r}: one host name or address per entry, no white space")
    return not_option(v, "server")


class Timezone(Model):
    timezone: str | None = None
    ntpservers: tuple[Annotated[str, AfterValidator(_ntp_server)], ...] = ()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None and (".." in v or v.startswith("/") or not v.strip()):
            raise ValueError(f"{v!r} is not a time zone name such as 'Europe/Berlin'")
        return v if v is None else no_control(v)


class Locale(Model):
    languages: tuple[str, ...] = ()
    keyboard: str | None = None

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for lang in v:
            if not _LOCALE.match(lang):
                raise ValueError(f"{lang!r} is not a locale name such as 'en_US.UTF-8'")
        return v

    @field_validator("keyboard")
    @classmethod
    def _keyboard(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$", v):
            raise ValueError(f"{v!r} is not a keymap name such as 'us' or 'de-latin1'")
        return v


class Services(Model):
    enabled: tuple[Unit, ...] = ()
    disabled: tuple[Unit, ...] = ()
    masked: tuple[Unit, ...] = ()


class CaCerts(Model):
    pem_certs: tuple[str, ...] = ()

    @field_validator("pem_certs")
    @classmethod
    def _pem(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for cert in v:
            if "-----BEGIN CERTIFICATE-----" not in cert:
                raise ValueError(
                    "each entry must be a PEM certificate (-----BEGIN CERTIFICATE-----)"
                )
        return v


class Customizations(Model):
    # Keys typed Any are recognised but never built here: composer/plan/keytable.py refuses any
    # non-empty value naming the key (partitioning_mode "raw" passes: plain partitions).
    hostname: str | None = None
    kernel: Kernel = Kernel()
    sshkey: tuple[SshKey, ...] = ()
    user: tuple[User, ...] = ()
    group: tuple[Group, ...] = ()
    timezone: Timezone = Timezone()
    locale: Locale = Locale()
    firewall: Firewall = Firewall()
    services: Services = Services()
    filesystem: tuple[Filesystem, ...] = ()
    disk: Disk | None = None
    installation_device: Any = None
    partitioning_mode: Any = None
    fdo: Any = None
    openscap: Any = None
    ignition: Any = None
    directories: tuple[Directory, ...] = ()
    files: tuple[File, ...] = ()
    # dnf targets only (composer/plan/keytable.py refuses them for apt targets, naming the key)
    repositories: tuple[Repository, ...] = ()
    fips: bool | None = None
    installer: Any = None
    rpm: Any = None
    rhsm: Any = None
    cacerts: CaCerts = CaCerts()
    containers_storage: Any = None
    firstboot: Any = None
    dnf: Any = None
    iso: Any = None
    sshd: Sshd = Sshd()

    # merged with Model's configuration (pydantic merges a subclass's model_config)
    model_config = ConfigDict(
        alias_generator=lambda n: n.replace("containers_storage", "containers-storage"),
        populate_by_name=True,
    )

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 253 or not _HOSTNAME.match(v)):
            raise ValueError(f"{v!r} is not a valid host name (RFC 1123)")
        return v

    def masked_dump(self) -> dict[str, Any]:
        """JSON-ready dump with every password replaced (plain text and crypt hashes: a
        hash can be cracked offline), for plan output and anything else that is shown."""
        data = self.model_dump(mode="json", by_alias=True)
        for user in data.get("user") or []:
            pw = user.get("password")
            if pw is not None:
                user["password"] = (
                    "<crypt hash: not shown>"
                    if is_crypt_hash(pw)
                    else "<plain text: hashed at build time, not shown>"
                )
        return data
