"""tests/conftest.py: the longest integration files are collected (so handed out) first."""

from __future__ import annotations

from pathlib import Path

from conftest import LONGEST_FIRST, file_rank  # tests/conftest.py (tests/ is on sys.path)

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


def test_every_named_file_exists_once() -> None:
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert [n for n in LONGEST_FIRST if not (INTEGRATION / n).is_file()] == []


def test_named_files_first_in_their_order_then_the_rest() -> None:
    named = [f"tests/integration/{n}::test_x" for n in reversed(LONGEST_FIRST)]
    rest = ["tests/integration/test_doctor.py::test_x", "tests/unit/test_architecture.py::t"]
    ids = sorted([*rest, *named], key=file_rank)
    assert ids == [f"tests/integration/{n}::test_x" for n in LONGEST_FIRST] + rest
