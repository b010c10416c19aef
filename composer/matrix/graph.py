"""The task graph of a matrix: one build task per distinct image, one boot task per image a
cell boots, each keyed by content.

A build task is keyed by the image's *planned* content key: the image stage's key
(composer/build/keys.py) derived from the cell's plan with the facts that only a build finds
out (the archive's index, version pins, SOURCE_DATE_EPOCH, the uki-virt repository) held at
one fixed value. Within one matrix run those facts are the same for every cell of one
distribution, so two cells with the same planned key build the same image: they share one
task. Cells whose planned root keys agree share the root stage; the graph has the first
build of each root group run alone, and the others after it, so the root tree is built once
and the others take it from the stage cache (shared through ``--cache-url`` across hosts).

Passwords reach keys only as HMACs under the cache's secret key, as in `build`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.build import keys
from composer.build.bootchain.chain import default_keys_dir
from composer.build.facts import Facts
from composer.build.pcrpolicy import default_pcr_key_dir
from composer.build.stages.sequence import STAGES, WHOLE_IMAGE
from composer.core import paths
from composer.core.hashing import tree_digest
from composer.core.secret import cache_secret
from composer.matrix.cells import Cell, KeyDirs, Source, cells
from composer.matrix.model import load
from composer.plan.load import parse as parse_blueprint
from composer.plan.plan import Plan, make_plan
from composer.toolchain.pcrkey import PcrKey
from composer.toolchain.toolstree import tools_key

PLANNED = "planned"  # the value of every fact a build finds out, in planned keys
ROOT_STAGE = "root"


@dataclass
class Task:
    id: str
    kind: str  # "build" or "boot"
    cells: list[str]
    after: list[str] = field(default_factory=list)
    key: str = ""  # build: the planned image key; boot: the image it boots
    root_key: str = ""
    blueprint: str | None = None  # build: the blueprint text of its first cell
    image: str | None = None  # boot only: the existing image
    build_args: list[str] = field(default_factory=list)  # build: --keys, --pcr-keys

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "cells": self.cells}
        data["after"] = self.after
        if self.kind == "build":
            data["image_key"], data["root_key"] = self.key, self.root_key
        elif self.image is not None:
            data["image"] = self.image
        return data


@dataclass
class Graph:
    name: str
    cells: list[Cell]
    tasks: list[Task]
    cell_tasks: dict[str, list[str]]  # cell -> the tasks whose results it reports

    def task(self, task_id: str) -> Task:
        return next(t for t in self.tasks if t.id == task_id)

    def as_json(self) -> dict[str, Any]:
        return {
            "matrix": self.name,
            "cells": [
                {
                    "id": c.id,
                    "values": dict(c.values),
                    "action": c.action,
                    "tasks": self.cell_tasks[c.id],
                    **({"blueprint_from": str(c.source)} if c.source and c.blueprint else {}),
                    **({"image": str(c.image)} if c.image else {}),
                }
                for c in self.cells
            ],
            "tasks": [t.as_json() for t in self.tasks],
        }


def planned_facts(plan: Plan, cache: Path) -> Facts:
    key_dir = Path(plan.secureboot_keys or default_keys_dir(cache))
    signing = plan.secureboot_sign and key_dir.is_dir()
    return Facts(
        composer=keys.composer_digest(),
        tools=tools_key(plan.arch),
        local_repos=(PLANNED,),
        pins={},
        index=PLANNED,
        epoch=0,
        secureboot_keys=tree_digest(key_dir) if signing else None,
        secret=cache_secret(cache),
        pcr_key=_planned_pcr_key(plan, cache),
    )


def _planned_pcr_key(plan: Plan, cache: Path) -> str | None:
    """The PCR policy key's fingerprint as the build will find it (PLANNED before the
    default pair exists: the build makes it)."""
    if not plan.pcr_policy:
        return None
    directory = Path(plan.pcr_keys or default_pcr_key_dir(cache))
    try:
        return PcrKey(directory).fingerprint
    except (OSError, ValueError):  # the build makes the default pair, or names what is wrong
        return PLANNED


def cell_plan(cell: Cell) -> tuple[Plan, KeyDirs]:
    """The plan of the cell's blueprint with the key directories its build is given."""
    label = f"{cell.source} (matrix cell {cell.id})"
    plan = make_plan(parse_blueprint(cell.blueprint or "", label), label)
    dirs = cell.keys.for_plan(plan)
    return dirs.apply(plan), dirs


def planned_keys(cell: Cell, cache: Path) -> dict[str, str]:
    """Every stage's planned key for the cell's blueprint."""
    plan, _ = cell_plan(cell)
    return keys.derive(plan, planned_facts(plan, cache), STAGES)


def _short(key: str) -> str:
    return key[:16]


def make_graph(src: Source, cache: Path | None = None) -> Graph:
    """The cells and tasks of the matrix (the same for the same file and cache secret)."""
    found = cells(src)
    seen: dict[str, str] = {}
    for c in found:
        if c.id in seen:
            raise src.error("axis", f"two cells are both named {c.id!r}: rename a value")
        seen[c.id] = c.id
    cache = cache or paths.cache_dir()
    tasks: dict[str, Task] = {}
    cell_tasks: dict[str, list[str]] = {}
    root_first: dict[str, str] = {}
    for c in found:
        mine: list[str] = []
        build_id = None
        if c.blueprint is not None:
            plan, dirs = cell_plan(c)
            k = keys.derive(plan, planned_facts(plan, cache), STAGES)
            build_id = f"build-{_short(k[WHOLE_IMAGE])}"
            if build_id not in tasks:
                first = root_first.setdefault(k[ROOT_STAGE], build_id)
                after = [] if first == build_id else [first]
                tasks[build_id] = Task(
                    build_id, "build", [], after, k[WHOLE_IMAGE], k[ROOT_STAGE], c.blueprint
                )
                tasks[build_id].build_args = dirs.build_args()
            tasks[build_id].cells.append(c.id)
            mine.append(build_id)
        if c.action in ("build+boot", "boot"):
            if build_id is not None:
                boot_id, after, image = f"boot-{build_id.removeprefix('build-')}", [build_id], None
            else:
                image = str(c.image)
                boot_id = f"boot-image-{hashlib.sha256(image.encode()).hexdigest()[:16]}"
                after = []
            if boot_id not in tasks:
                tasks[boot_id] = Task(boot_id, "boot", [], after, image=image)
                if build_id is not None:
                    tasks[boot_id].key = tasks[build_id].key
            tasks[boot_id].cells.append(c.id)
            mine.append(boot_id)
        cell_tasks[c.id] = mine
    return Graph(src.model.matrix.name, found, list(tasks.values()), cell_tasks)


def plan_matrix(path: Path, cache: Path | None = None) -> Graph:
    model, text = load(path)
    return make_graph(Source(model, str(path), text), cache)


def plan_json(graph: Graph) -> str:
    return json.dumps(graph.as_json(), indent=2, sort_keys=False) + "\n"


def build_order(graph: Graph) -> Sequence[Task]:
    """The tasks in an order where each comes after those it depends on (as listed)."""
    return graph.tasks
