"""The matrix file: a typed model of what `dps-composer matrix` builds and boots.

A matrix names a base blueprint and axes; each axis has named values, each value a set of
overrides of the base blueprint (or a blueprint of its own). The cells are the cross product
of the axes' values, minus ``[[exclude]]`` matches, plus ``[[include]]`` cells. Every path
in the file is relative to the file's own directory and must stay inside it (as a blueprint's
``[secureboot] keys`` does): a matrix handed over by someone else cannot make the composer
read or boot files elsewhere on the build host.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from composer.blueprint.lines import dotted
from composer.blueprint.text import located, parse_toml, read_blueprint
from composer.core.errors import ComposerError, Problem
from composer.core.model import Model, valid_keys_at
from composer.core.units import parse_duration

Action = Literal["build", "build+boot", "boot"]
ACTIONS: tuple[str, ...] = ("build", "build+boot", "boot")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_NAME_RULE = "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"


class MatrixInfraError(ComposerError):
    """The cluster cannot run the matrix (no worker can run a cell, the scheduler is gone)."""

    exit_code = 3


def _valid_name(v: str) -> str:
    if not _NAME.match(v):
        raise ValueError(f"{v!r} is not a name: use {_NAME_RULE} (at most 63)")
    return v


class Value(Model):
    """One value of an axis: what it changes in the base blueprint."""

    name: str
    blueprint: str | None = None  # a blueprint of its own instead of the base one
    image: str | None = None  # an existing image, for cells whose action is "boot"
    loader: Literal["systemd-boot", "grub2", "uki-direct"] | None = None
    secure_boot: bool | None = None
    formats: list[str] | None = None
    hostname: str | None = None
    distribution: str | None = None
    kernel: str | None = None  # the kernel package: [customizations.kernel] name
    customizations: dict[str, Any] | None = None  # merged into [customizations]

    _n = field_validator("name")(classmethod(lambda cls, v: _valid_name(v)))


class Axis(Model):
    name: str
    values: list[Value] = Field(min_length=1)

    _n = field_validator("name")(classmethod(lambda cls, v: _valid_name(v)))

    @model_validator(mode="after")
    def _unique(self) -> Axis:
        names = [v.name for v in self.values]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"value names must be unique in an axis: {', '.join(twice)} twice")
        return self


class Selection(Model):
    """A set of cells: axis name -> value name (``[[exclude]]``: any cell matching all of
    them; ``[[include]]``: one cell, every axis named; ``[[actions]]``: cells to set the
    action of)."""

    where: dict[str, str]
    action: Action | None = None


class Limits(Model):
    boots_per_worker: int = Field(default=1, ge=1, le=64)
    build_timeout: str | int = "60 min"
    boot_timeout: str | int = "30 min"
    retries: int = Field(default=1, ge=0, le=10)  # a task whose worker died runs again

    @field_validator("build_timeout", "boot_timeout")
    @classmethod
    def _duration(cls, v: str | int) -> str | int:
        parse_duration(v)
        return v

    def seconds(self, which: Literal["build", "boot"]) -> float:
        return parse_duration(self.build_timeout if which == "build" else self.boot_timeout)


class Head(Model):
    name: str
    base: str | None = None  # the base blueprint (values may name their own)
    action: Action = "build"

    _n = field_validator("name")(classmethod(lambda cls, v: _valid_name(v)))


class MatrixFile(Model):
    matrix: Head
    axis: list[Axis] = Field(min_length=1)
    exclude: list[Selection] = []
    include: list[Selection] = []
    actions: list[Selection] = []
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _axes(self) -> MatrixFile:
        names = [a.name for a in self.axis]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"axis names must be unique: {', '.join(twice)} twice")
        return self


def _problem(err: Any) -> Problem:
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or not p.startswith("literal["))
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        valid = ", ".join(valid_keys_at(MatrixFile, loc))
        msg = "unknown key" + (f"; valid keys here: {valid}" if valid else "")
    elif err["type"] == "missing":
        msg = "required key is missing"
    return Problem(dotted(loc), msg)


def _problems(errors: list[Any]) -> list[Problem]:
    """Every problem, less "too short" for a list whose items were themselves wrong."""
    found = [_problem(e) for e in errors]
    deeper = [p.key for p, e in zip(found, errors, strict=True) if e["type"] != "too_short"]
    return [
        p
        for p, e in zip(found, errors, strict=True)
        if e["type"] != "too_short" or not any(k.startswith(p.key + "[") for k in deeper)
    ]


def parse(text: str, file: str) -> MatrixFile:
    """Matrix TOML text, validated: every problem names the file, line and key."""
    data = parse_toml(text, file)
    try:
        return MatrixFile.model_validate(data)
    except ValidationError as exc:
        raise located(file, text, _problems(list(exc.errors()))) from None


def load(path: Path) -> tuple[MatrixFile, str]:
    """The matrix file at ``path`` (a regular file of a sane size) and its text."""
    text = read_blueprint(path)
    return parse(text, str(path)), text


def inside(base: Path, value: str, file: str, key: str, text: str) -> Path:
    """``value`` resolved relative to ``base`` (the matrix file's directory); it must stay
    inside it, symbolic links resolved."""
    if not value or "\0" in value:
        raise located(file, text, [Problem(key, "must be a path relative to the matrix file")])
    resolved = (base / value).resolve()
    root = base.resolve()
    if resolved != root and root not in resolved.parents:
        raise located(
            file,
            text,
            [Problem(key, f"{value!r} leaves the matrix file's directory {root}: "
                     "give a path inside it")],
        )  # fmt: skip
    return resolved
