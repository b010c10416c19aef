"""The changes a fixup plan is made of; each says in one line what it does."""

from __future__ import annotations

from dataclasses import dataclass

from composer.fixup.facts import Partition
from composer.spec import dps


@dataclass(frozen=True)
class SetType:
    partition: Partition
    new: str  # type UUID
    why: str

    def describe(self) -> str:
        old = dps.by_uuid(self.partition.type_uuid)
        new = dps.by_uuid(self.new)
        return (
            f"{self.partition.node}: type {old.name if old else self.partition.type_uuid} -> "
            f"{new.name if new else self.new} ({self.why})"
        )


@dataclass(frozen=True)
class SetUuid:
    partition: Partition
    new: str
    why: str

    def describe(self) -> str:
        return f"{self.partition.node}: partition UUID {self.partition.uuid} -> {self.new} ({self.why})"


@dataclass(frozen=True)
class WriteFile:
    path: str
    old: str
    new: str
    why: str

    def describe(self) -> str:
        return f"{self.path}: {self.why}"


@dataclass(frozen=True)
class CopyFile:
    src: str
    dst: str
    why: str

    def describe(self) -> str:
        return f"copy {self.src} -> {self.dst} ({self.why})"


@dataclass(frozen=True)
class InstallSystemdBoot:
    esp: str

    def describe(self) -> str:
        return f"install systemd-boot into the ESP at {self.esp} (bootctl install)"


Action = SetType | SetUuid | WriteFile | CopyFile | InstallSystemdBoot


@dataclass(frozen=True)
class FixupPlan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()  # what is fine already, or was decided
    problems: tuple[str, ...] = ()  # what stays as it is, and why
    root_discoverable: bool = False

    @property
    def changes(self) -> bool:
        return bool(self.actions)

    def lines(self) -> list[str]:
        out = [f"change: {a.describe()}" for a in self.actions]
        out += [f"ok: {n}" for n in self.notes]
        out += [f"kept: {p}" for p in self.problems]
        return out or ["ok: nothing to change"]
