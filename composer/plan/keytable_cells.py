"""The cells of the key table (composer/plan/keytable.py): what a target does with a key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Target = Literal["debian", "fedora", "kickstart"]
TARGETS: tuple[Target, ...] = ("debian", "fedora", "kickstart")


@dataclass(frozen=True)
class Cell:
    text: str
    refused: bool = False  # a non-empty value is an error, ``text`` the reason
    neutral: tuple[Any, ...] = ()  # values that pass although the key is refused


def yes(text: str) -> Cell:
    return Cell(text)


def no(reason: str, *neutral: Any) -> Cell:
    return Cell(reason, True, neutral)


@dataclass(frozen=True)
class Row:
    key: str  # dotted TOML path; "[]" stands for every entry of an array of tables
    debian: Cell
    fedora: Cell
    kickstart: Cell

    def cell(self, target: Target) -> Cell:
        cell: Cell = getattr(self, target)
        return cell


def same(text: str) -> tuple[Cell, Cell]:
    return yes(text), yes(text)
