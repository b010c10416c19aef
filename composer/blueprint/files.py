"""osbuild [[customizations.files]] and [[customizations.directories]] (typed, frozen)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    field_validator,
    model_validator,
)

from composer.blueprint.values import no_control
from composer.core.model import Model
from composer.target.hierarchy import hidden_at_boot

_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")
_MODE = re.compile(r"^0?[0-7]{3}$")
# Paths the composer itself owns: set them through their own keys.
_OWNED = {
    "/etc/fstab": "the composer writes fstab (DPS partitions need no entries)",
    "/etc/machine-id": "use [image] machine_id",
    "/etc/hostname": "use customizations.hostname",
    "/etc/passwd": "use [[customizations.user]]",
    "/etc/shadow": "use [[customizations.user]]",
    "/etc/group": "use [[customizations.group]]",
    "/etc/gshadow": "use [[customizations.group]]",
}


def _abs_path(v: str) -> str:
    if not v.startswith("/") or any(p in ("..", ".") for p in v.split("/")) or "//" in v:
        raise ValueError(f"{v!r} must be an absolute, normalised path (no '.', '..' or '//')")
    if len(v) < 2:
        raise ValueError(f"{v!r} is not a usable path")
    return no_control(v).rstrip("/")


def _image_path(v: str) -> str:
    """A file or directory the booted system must see (not below /run, /tmp, ...)."""
    hidden = hidden_at_boot(v)
    if hidden is not None:
        raise ValueError(hidden)
    return v


AbsPath = Annotated[str, AfterValidator(_abs_path)]
# a path in the image that must still be there when it boots
ImagePath = Annotated[str, AfterValidator(_abs_path), AfterValidator(_image_path)]


def _owner(v: Any) -> Any:
    if v is None:
        return v
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ValueError("must be a user/group name (string) or a numeric id (integer)")
    if isinstance(v, int) and not 0 <= v < 2**32 - 1:
        raise ValueError(f"{v} is not a valid numeric id")
    if isinstance(v, str) and not _USER.match(v):
        raise ValueError(f"{v!r} is not a valid user/group name")
    return v


Owner = Annotated[str | int | None, BeforeValidator(_owner)]


def _mode(v: str | None) -> str | None:
    if v is not None and not _MODE.match(v):
        raise ValueError(f"mode {v!r} must be an octal string like '0644' or '755'")
    return v


Mode = Annotated[str | None, AfterValidator(_mode)]


class File(Model):
    path: ImagePath
    mode: Mode = None
    user: Owner = None
    group: Owner = None
    data: str = ""
    # osbuild: the content of a file on the build host (osbuild/blueprint
    # pkg/blueprint/fsnode_customizations.go, FileCustomization.URI; file:// only). Read when
    # the blueprint is loaded (composer/blueprint/load.py load), so the plan carries the content;
    # only files in the blueprint's own directory tree. Also `file:RELATIVE/PATH`, relative to
    # the blueprint (an extension: a blueprint and its files move together).
    uri: str = ""

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not v:
            return v
        if v.startswith("file:///") and _abs_path(v.removeprefix("file://")):
            return v
        rel = v.removeprefix("file:")
        if v.startswith("file:") and rel and not rel.startswith("/") and ".." not in rel.split("/"):
            return v
        raise ValueError(
            f"{v!r}: give file:///absolute/path or file:path/relative/to/the/blueprint"
        )

    @model_validator(mode="after")
    def _data_or_uri(self) -> File:
        if self.data and self.uri:
            raise ValueError("give either data or uri, not both")
        return self

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if v in _OWNED:
            raise ValueError(f"{v} cannot be set with files: {_OWNED[v]}")
        return v


class Directory(Model):
    path: ImagePath
    mode: Mode = None
    user: Owner = None
    group: Owner = None
    ensure_parents: bool = False
