"""osbuild's ``[[customizations.repositories]]``: dnf/yum repositories for dnf targets
(fedora-*, centos-stream-*). Debian targets use their archive and refuse them
(composer/keytable.py). Keys as osbuild/blueprint pkg/blueprint/repository_customizations.go
(``sslverify``; the composer's earlier spelling ``ssl_verify`` is still read)."""

from __future__ import annotations

import re

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_URL = re.compile(r"^(https?|ftp|file)://\S+$")
_FILENAME = re.compile(r"^[\w.-]{1,250}\.repo$")  # osbuild's repoFilenameRegex


class Repository(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str
    name: str | None = None
    filename: str | None = None
    baseurls: tuple[str, ...] = ()
    mirrorlist: str | None = None
    metalink: str | None = None
    gpgkeys: tuple[str, ...] = ()
    gpgcheck: bool | None = None
    repo_gpgcheck: bool | None = None
    enabled: bool = True
    priority: int | None = None
    sslverify: bool | None = Field(
        default=None, validation_alias=AliasChoices("sslverify", "ssl_verify")
    )
    module_hotfixes: bool | None = None
    # osbuild: install packages from it too. The composer always builds from the listed
    # repositories (composer/rootfs/dnf.py), so this changes nothing; it is accepted.
    install_from: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"{v!r}: a repository id is letters, digits and '_.:-'")
        return v

    @field_validator("baseurls")
    @classmethod
    def _urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for url in v:
            if not _URL.match(url):
                raise ValueError(f"{url!r} is not an http(s)://, ftp:// or file:// URL")
        return v

    @field_validator("filename")
    @classmethod
    def _filename(cls, v: str | None) -> str | None:
        if v is not None and not _FILENAME.match(v if v.endswith(".repo") else f"{v}.repo"):
            raise ValueError(f"{v!r}: a file name of letters, digits, '_.-' (ending .repo)")
        return v

    @property
    def repo_file(self) -> str:
        """Its file in /etc/yum.repos.d (osbuild's getFilename: ID.repo by default)."""
        name = self.filename or self.id
        return name if name.endswith(".repo") else f"{name}.repo"

    @model_validator(mode="after")
    def _one_source(self) -> Repository:
        if not (self.baseurls or self.mirrorlist or self.metalink):
            raise ValueError(f"repository {self.id!r}: give baseurls, mirrorlist or metalink")
        return self

    def dnf_options(self) -> dict[str, str]:
        """The repository's section of a dnf configuration file."""
        opts: dict[str, str] = {"name": self.name or self.id, "enabled": str(int(self.enabled))}
        if self.baseurls:
            opts["baseurl"] = " ".join(self.baseurls)
        if self.mirrorlist:
            opts["mirrorlist"] = self.mirrorlist
        if self.metalink:
            opts["metalink"] = self.metalink
        if self.gpgkeys:
            opts["gpgkey"] = " ".join(k for k in self.gpgkeys if "://" in k)
        # osbuild's default: check signatures when keys are given
        gpgcheck = self.gpgcheck if self.gpgcheck is not None else bool(self.gpgkeys)
        opts["gpgcheck"] = str(int(gpgcheck))
        for key in ("repo_gpgcheck", "priority", "sslverify", "module_hotfixes"):
            value = getattr(self, key)
            if value is not None:
                opts[key] = str(int(value) if isinstance(value, bool) else value)
        return opts
