"""osbuild blueprint package keys: [[packages]], [[modules]], [[enabled_modules]], [[groups]],
[[containers]] (typed, frozen)."""

from __future__ import annotations

import re

from pydantic import ConfigDict, field_validator

from composer.core.model import Model

# Any distribution's package name (rpm's may have capitals, dnf's @group and @module:stream);
# the target's own rules are checked at plan time (composer/plan/judgement.py)
_PACKAGE = re.compile(r"^@?[A-Za-z0-9_][A-Za-z0-9_.+-]*(:[A-Za-z0-9_.+-]+)?(/[A-Za-z0-9_]+)?$")
_VERSION_GLOB = re.compile(r"^[A-Za-z0-9.+~:*?\[\]-]+$")


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
        if v in ("*", ""):
            return "*"
        if not _VERSION_GLOB.match(v) or v.startswith("-"):
            raise ValueError(
                f"version {v!r}: use a version or a glob of one ('*', '1.36.*', '3.4-?')"
            )
        return v

    @property
    def pinned(self) -> bool:
        return self.version != "*"


class EnabledModule(Model):
    name: str
    stream: str = ""


class PackageGroup(Model):
    name: str


class Container(Model):
    source: str
    name: str = ""
    tls_verify: bool | None = None
    local_storage: bool = False

    # merged with Model's configuration (pydantic merges a subclass's model_config)
    model_config = ConfigDict(
        alias_generator=lambda n: n.replace("_", "-"),
        populate_by_name=True,
    )
