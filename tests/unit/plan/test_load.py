"""The corpus of real-world-shaped osbuild blueprints (tests/corpus): each is planned (and
for Fedora, rendered as a kickstart) and either accepted or refused with exactly the keys its
header names, each problem with its file, line and reason. What the archive decides
(``resolve``) and building and booting are tests/integration/test_field_corpus.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.kickstart.render import render
from composer.plan.load import load
from composer.plan.plan import make_plan

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FILES = sorted(CORPUS.glob("*.toml"))


def expectations(path: Path) -> dict[str, list[str]]:
    """`# expect: STAGE ok` / `# expect: STAGE refused KEY...` / `# expect: build and boot`."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^# expect: (\S+) (ok|refused|and boot)(.*)$", path.read_text(), re.M):
        out[m.group(1)] = m.group(3).split() if m.group(2) == "refused" else []
        if m.group(2) == "refused":
            out[m.group(1)].insert(0, "refused")
    return out


def test_the_corpus_is_there_and_every_file_says_what_it_expects() -> None:
    assert len(FILES) >= 15
    for path in FILES:
        assert "plan" in expectations(path), path.name


def _check_refusal(error: BlueprintError, path: Path, keys: list[str]) -> None:
    assert {p.key for p in error.problems} == set(keys), str(error)
    text = path.read_text().count("\n") + 1
    for p in error.problems:
        assert p.line is not None and 1 <= p.line <= text and p.message, p
    assert str(error).splitlines()[0].startswith(f"{path}:")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_plan_accepts_or_refuses_with_file_line_key_and_reason(path: Path) -> None:
    want = expectations(path)["plan"]
    if not want:
        make_plan(load(path))
        return
    with pytest.raises(BlueprintError) as info:
        make_plan(load(path))
    _check_refusal(info.value, path, want[1:])


@pytest.mark.parametrize(
    "path", [p for p in FILES if "kickstart" in expectations(p)], ids=lambda p: p.name
)
def test_kickstart_renders_or_refuses_by_key(path: Path) -> None:
    want = expectations(path)["kickstart"]
    if not want:
        assert "%post" in render(load(path), source=path.name)
        return
    with pytest.raises(BlueprintError) as info:
        render(load(path))
    _check_refusal(info.value, path, want[1:])
