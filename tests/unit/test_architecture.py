"""The layers of composer/, checked from the source: imports go only from a higher-ranked
package to a lower-ranked one, and no modules import each other in a circle.

The ranks below are the one declaration of the layering; docs/architecture.md shows the same
table (checked here too). Inside one package anything goes except a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "composer"

# package -> rank: a module may import from packages of a lower rank only
RANKS: dict[str, int] = {
    "core": 0,
    "spec": 10,
    "target": 15,
    "blueprint": 20,
    "plan": 30,
    "image": 40,
    "measure": 50,
    "manifest": 55,
    "rootfs": 60,
    "toolchain": 70,
    "uki_virt": 80,
    "inspect": 90,
    "build": 100,
    "judge": 110,
    "fixup": 120,
    "kickstart": 130,
    "doctor": 140,
    "matrix": 145,
    "cli": 150,
}
# composer/__init__.py (the version, DATA) imports nothing of the composer and may be imported
# by any module; composer/__main__.py (python -m composer) only starts the CLI.
ROOT_MODULES = {"composer": -1, "composer.__main__": 1000}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(name: str, known: dict[str, Path]) -> str:
    """The module an imported name refers to: itself if it is a module, else its module."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import of the composer in the module, also inside
    functions and ``if TYPE_CHECKING:`` blocks."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "composer":
                    yield _target(alias.name, known), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] != "composer":
                continue
            for alias in node.names:
                yield _target(f"{module}.{alias.name}", known), node.lineno


def graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line}."""
    known = modules()
    return {
        name: {target: line for target, line in imports(name, path, known) if target != name}
        for name, path in known.items()
    }


def rank(module: str) -> int:
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    return RANKS[module.split(".")[1]]


def package(module: str) -> str:
    return module if module in ROOT_MODULES else module.split(".")[1]


def test_every_package_has_a_rank() -> None:
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert found == set(RANKS), (
        f"rank these in RANKS (and docs/architecture.md): {found ^ set(RANKS)}"
    )


def test_only_the_entry_points_are_top_level_modules() -> None:
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


def test_imports_go_only_downward() -> None:
    upward = [
        f"{module} ({package(module)}, rank {rank(module)}) imports {target} "
        f"({package(target)}, rank {rank(target)}) at line {line}"
        for module, targets in graph().items()
        for target, line in targets.items()
        if package(target) != package(module) and rank(target) >= rank(module)
    ]
    assert upward == []


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """The checks above cannot pass by accident: a circle and an upward import are found."""
    edges = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(edges) == [["a", "b", "c"]]
    known = modules()
    path = known["composer.core.errors"]
    assert list(imports("composer.core.errors", path, known)) == []
    g = graph()
    assert "composer.core.errors" in g["composer.cli.common"]
    assert rank("composer.cli.common") > rank("composer.core.errors")


def test_the_documented_ranks_are_these() -> None:
    text = (ROOT / "docs/architecture.md").read_text()
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`(\w+)/`", text, re.M)
    assert {name: int(r) for r, name in rows} == RANKS
