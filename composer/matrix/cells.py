"""The cells of a matrix: the cross product of its axes' values, minus the excluded, plus the
included, each with its action and its blueprint (the base blueprint with the values'
overrides applied, in the order of the axes).

Everything here is pure: the same matrix file gives the same cells, in the same order, with
the same blueprint text.
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.blueprint.text import located, read_blueprint
from composer.core.errors import Problem
from composer.matrix.model import Action, MatrixFile, Selection, Value, inside
from composer.matrix.toml_text import NotExpressible, dumps, plain
from composer.plan.keydirs import link_problem, shape_problem
from composer.plan.plan import Plan, with_key_dirs

# A value's override keys -> where they go in the blueprint
OVERRIDES: dict[str, tuple[str, ...]] = {
    "loader": ("boot", "loader"),
    "secure_boot": ("secureboot", "sign"),
    "formats": ("image", "formats"),
    "hostname": ("customizations", "hostname"),
    "distribution": ("distro",),
    "kernel": ("customizations", "kernel", "name"),
}


@dataclass(frozen=True)
class KeyDirs:
    """The key directories of a cell's blueprint, for its build's command line (``--keys``,
    ``--pcr-keys``): checked against the blueprint's directory, absolute."""

    secureboot: str | None = None
    pcr: str | None = None

    def for_plan(self, plan: Plan) -> KeyDirs:
        """What the cell's plan signs with (a value may have turned signing off)."""
        return KeyDirs(
            self.secureboot if plan.secureboot_sign else None,
            self.pcr if plan.pcr_policy else None,
        )

    def apply(self, plan: Plan) -> Plan:
        return with_key_dirs(plan, *(Path(d) if d else None for d in (self.secureboot, self.pcr)))

    def build_args(self) -> list[str]:
        args = ["--keys", self.secureboot] if self.secureboot else []
        return args + (["--pcr-keys", self.pcr] if self.pcr else [])


@dataclass(frozen=True)
class Cell:
    id: str  # the values' names joined by "-", in the order of the axes
    values: Mapping[str, str]  # axis -> value name
    action: Action
    blueprint: str | None  # the cell's blueprint text (None: boot only)
    source: Path | None  # the blueprint file it was derived from
    image: Path | None  # the existing image a boot-only cell boots
    keys: KeyDirs = KeyDirs()  # the key directories given to its build


@dataclass(frozen=True)
class Source:
    """The matrix file as the cells are made from it."""

    model: MatrixFile
    file: str
    text: str

    @property
    def base_dir(self) -> Path:
        return Path(self.file).resolve().parent

    def error(self, key: str, message: str) -> Exception:
        return located(self.file, self.text, [Problem(key, message)])


def _matches(where: Mapping[str, str], values: Mapping[str, str]) -> bool:
    return all(values.get(axis) == name for axis, name in where.items())


def _check_selection(src: Source, sel: Selection, key: str, whole: bool) -> None:
    axes = {a.name: {v.name for v in a.values} for a in src.model.axis}
    for axis, name in sel.where.items():
        if axis not in axes:
            raise src.error(f"{key}.where.{axis}", f"no such axis; axes: {', '.join(axes)}")
        if name not in axes[axis]:
            raise src.error(
                f"{key}.where.{axis}",
                f"{name!r} is not a value of axis {axis!r}; values: {', '.join(sorted(axes[axis]))}",
            )
    if whole and set(sel.where) != set(axes):
        missing = ", ".join(sorted(set(axes) - set(sel.where)))
        raise src.error(
            f"{key}.where", f"an included cell names a value of every axis: add {missing}"
        )


def combinations(src: Source) -> list[dict[str, str]]:
    """axis -> value name of every cell, in order: the product, less excludes, plus includes."""
    m = src.model
    for i, sel in enumerate(m.exclude):
        _check_selection(src, sel, f"exclude[{i}]", whole=False)
    for i, sel in enumerate(m.include):
        _check_selection(src, sel, f"include[{i}]", whole=True)
    for i, sel in enumerate(m.actions):
        _check_selection(src, sel, f"actions[{i}]", whole=False)
        if sel.action is None:
            raise src.error(
                f"actions[{i}].action",
                f"required: one of {', '.join(('build', 'build+boot', 'boot'))}",
            )
    names = [a.name for a in m.axis]
    found: list[dict[str, str]] = []
    for combo in itertools.product(*[[v.name for v in a.values] for a in m.axis]):
        values = dict(zip(names, combo, strict=True))
        if not any(_matches(e.where, values) for e in m.exclude):
            found.append(values)
    for inc in m.include:
        values = {n: inc.where[n] for n in names}
        if values not in found:
            found.append(values)
    return found


def action_of(src: Source, values: Mapping[str, str]) -> Action:
    """The last ``[[actions]]`` (or ``[[include]]``) that matches, else the matrix's action."""
    action: Action = src.model.matrix.action
    for sel in src.model.actions:
        if _matches(sel.where, values) and sel.action is not None:
            action = sel.action
    for sel in src.model.include:
        if sel.where == dict(values) and sel.action is not None:
            action = sel.action
    return action


def _value(src: Source, axis: str, name: str) -> tuple[int, int, Value]:
    for i, a in enumerate(src.model.axis):
        if a.name == axis:
            for j, v in enumerate(a.values):
                if v.name == name:
                    return i, j, v
    raise AssertionError(f"{axis}={name} was checked")


def _set(data: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    for part in where[:-1]:
        data = data.setdefault(part, {})
    data[where[-1]] = value


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(plain(v))


def _blueprint_data(src: Source, path: Path, key: str) -> dict[str, Any]:
    text = read_blueprint(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise src.error(key, f"{path}: not valid TOML: {exc}") from None


def _key_dirs(src: Source, key: str, data: dict[str, Any], source: Path) -> KeyDirs:
    """The key directories the blueprint names, taken out of it for the cell's build command
    line (the cell's blueprint is written elsewhere): each must lie below the blueprint's
    directory, as for `build` (composer/plan/keydirs.py)."""
    found: list[str | None] = []
    for table in ("secureboot", "measured"):
        section = data.get(table)
        value = section.pop("keys", None) if isinstance(section, dict) else None
        if not isinstance(value, str) or not value.strip():
            found.append(None)
            continue
        base = source.parent
        problem = shape_problem(f"{table}.keys", value) or link_problem(
            f"{table}.keys", value, base
        )
        if problem is not None:
            raise src.error(key, f"{source}: {problem.key}: {problem.message}")
        found.append(str(base / value))
    return KeyDirs(*found)


def cell_blueprint(src: Source, values: Mapping[str, str]) -> tuple[str, Path, KeyDirs] | None:
    """The cell's blueprint text, the file it derives from and the key directories it names;
    None when no blueprint."""
    chosen = [(_value(src, a, n)) for a, n in values.items()]
    own = [(i, j, v) for i, j, v in chosen if v.blueprint is not None]
    if len(own) > 1:
        keys = " and ".join(f"axis[{i}].values[{j}].blueprint" for i, j, _ in own)
        raise src.error(keys.split(" and ")[1], f"a cell can take one blueprint only: {keys}")
    if own:
        i, j, v = own[0]
        key, named = f"axis[{i}].values[{j}].blueprint", v.blueprint or ""
    elif src.model.matrix.base is not None:
        key, named = "matrix.base", src.model.matrix.base
    else:
        return None
    source = inside(src.base_dir, named, src.file, key, src.text)
    data = _blueprint_data(src, source, key)
    key_dirs = _key_dirs(src, key, data, source)
    for _i, _j, v in chosen:
        for field, where in OVERRIDES.items():
            if getattr(v, field) is not None:
                _set(data, where, plain(getattr(v, field)))
        if v.customizations is not None:
            _merge(data.setdefault("customizations", {}), v.customizations)
        files = data.get("customizations", {}).get("files", [])
        if any(isinstance(f, dict) and f.get("uri") for f in files):
            raise src.error(
                key, "[[customizations.files]] uri is not supported in a matrix: give data"
            )
    try:
        return dumps(data), source, key_dirs
    except NotExpressible as exc:
        raise src.error(key, f"the cell's blueprint cannot be written: {exc}") from None


def cells(src: Source) -> list[Cell]:
    """Every cell of the matrix, in order."""
    found = []
    for values in combinations(src):
        action = action_of(src, values)
        derived = cell_blueprint(src, values)
        images = [
            (i, j, v) for i, j, v in (_value(src, a, n) for a, n in values.items()) if v.image
        ]
        image = None
        if images:
            i, j, v = images[-1]
            image = inside(
                src.base_dir, v.image or "", src.file, f"axis[{i}].values[{j}].image", src.text
            )
        cell_id = "-".join(values[a.name] for a in src.model.axis)
        if action == "boot" and image is None:
            raise src.error(
                "actions", f"cell {cell_id} boots an existing image: give a value an `image`"
            )
        if action != "boot" and derived is None:
            raise src.error(
                "matrix.base",
                f"cell {cell_id} builds: give a base blueprint or a value's `blueprint`",
            )
        text, source, keys = derived if derived is not None else (None, None, KeyDirs())
        blueprint = text if action != "boot" else None
        found.append(Cell(cell_id, values, action, blueprint, source, image, keys))
    return found
