"""What each blueprint key does for each target: a Debian image, a Fedora (dnf) image, an
anaconda kickstart. One table, used three ways: a key a target refuses is an error naming the
key with the reason written here (``refusals``); the key table of docs/blueprint.md is printed from it
(``markdown``, kept current by a unit test); the kickstart test walks every row.

Cells that only describe (``refused=False``) say what the target does with the key; where a
key is honoured only for some values (kernel names, partition types, ...), the checks that
refuse the others live beside the code that honours it and name the key too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from composer.core.errors import Problem
from composer.plan.keytable_cells import TARGETS, Cell, Row, Target
from composer.plan.keytable_rows import ROWS

__all__ = ["ROWS", "TARGETS", "Cell", "Row", "Target", "markdown", "refusals", "row"]


def row(key: str) -> Row:
    return next(r for r in ROWS if r.key == key)


def markdown() -> str:
    """The key table of docs/blueprint.md."""
    lines = ["| key | Debian image | Fedora image | kickstart |", "|---|---|---|---|"]
    for r in ROWS:
        keys = ", ".join(f"`{k.strip()}`" for k in r.key.split(","))
        cells = [("refused: " if c.refused else "") + c.text for c in (r.debian, r.fedora,
                 r.kickstart)]  # fmt: skip
        lines.append(f"| {keys} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _empty(value: Any) -> bool:
    """Nothing asked for: None, empty, or a table with every key at its default."""
    if value is None or value in ("", (), {}):
        return True
    if isinstance(value, BaseModel):
        return value == type(value)()
    return False


def _field(model: BaseModel, key: str) -> Any:
    for name, info in type(model).model_fields.items():
        if key in (name, info.alias):
            return getattr(model, name)
    raise KeyError(key)


def values(model: BaseModel, key: str) -> Iterator[tuple[str, Any]]:
    """(dotted key with indexes, value) for every value ``key`` names in ``model``."""
    head, _, rest = key.partition(".")
    many = head.endswith("[]")
    name = head.removesuffix("[]")
    value = _field(model, name)
    if many and not rest:  # the whole array: named once
        yield name, value
        return
    items = list(enumerate(value)) if many else [(None, value)]
    for i, item in items:
        here = name if i is None else f"{name}[{i}]"
        if not rest:
            yield here, item
        elif isinstance(item, BaseModel):
            yield from ((f"{here}.{k}", v) for k, v in values(item, rest))


def refusals(model: BaseModel, target: Target) -> list[Problem]:
    """A problem for every key ``target`` refuses that ``model`` (a Blueprint) sets."""
    out = []
    for r in ROWS:
        cell = r.cell(target)
        if not cell.refused:
            continue
        for key in (k.strip() for k in r.key.split(",")):
            for where, value in values(model, key):
                if not _empty(value) and value not in cell.neutral:
                    out.append(Problem(where, f"not supported for {_NAMES[target]}: {cell.text}"))
    return out


_NAMES = {"debian": "Debian images", "fedora": "Fedora images", "kickstart": "kickstarts"}
