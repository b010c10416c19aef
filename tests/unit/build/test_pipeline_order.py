"""Which stages of a build may overlap: from the stages' declarations (what they come after,
the facts they read), the whole-image lookup, and the one-at-a-time order after it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from composer.build.pipeline import LOOKUP, stage_needs, task_order
from composer.build.schedule import Schedule, Task
from composer.build.stages.sequence import STAGES, stage
from composer.core.log import log_file, prefixed


def needs(name: str, applying: tuple[str, ...] = ()) -> set[str]:
    stages = [s for s in STAGES if not applying or s.name in applying]
    return set(stage_needs(stage(name), stages))


def test_the_front_stages_overlap_by_their_declarations() -> None:
    assert needs("tools-tree") == set()
    assert needs("resolve") == set()  # alongside the tools tree and uki-virt
    assert needs("uki-virt") == {"tools-tree"}
    # the package set is judged while uki-virt builds: it reads resolve's facts only
    assert needs("package-check") == {"resolve"}


def test_the_package_check_downloads_while_the_tools_tree_is_made() -> None:
    """A cold build's two long front stages overlap in the schedule the build runs: the tools
    tree's task ends only once package-check has started (it would wait in vain, for 10 s, if
    package-check were held back until the tools tree ended)."""
    checking = threading.Event()
    seen: list[bool] = []

    def run(name: str, waits_for: frozenset[str]) -> Task:
        def work() -> None:
            if name == "tools-tree":
                seen.append(checking.wait(10))
            elif name == "package-check":
                checking.set()

        return Task(name, waits_for, work)

    schedule = Schedule([run(name, waits_for) for name, waits_for in task_order(STAGES)])
    schedule.run()
    assert seen == [True]
    assert schedule.finished.index("tools-tree") < schedule.finished.index(LOOKUP)


def test_the_root_tree_waits_for_the_lookup_uki_virt_and_the_package_check() -> None:
    """Its key reads uki-virt's repository; it installs what package-check downloaded."""
    assert needs("root") == {"tools-tree", "uki-virt", "resolve", "package-check", LOOKUP}


def test_after_the_lookup_stages_run_one_at_a_time_in_their_order() -> None:
    names = [s.name for s in STAGES]
    for before, name in zip(names[4:], names[5:], strict=False):
        assert {before, LOOKUP} <= needs(name), name


def test_a_stage_that_does_not_apply_is_not_waited_for() -> None:
    without = tuple(s.name for s in STAGES if s.name != "uki-virt")
    assert "uki-virt" not in needs("root", without)


def test_overlapping_lines_carry_their_stage(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    logger = logging.getLogger("composer.test")
    with log_file(log):
        logger.info("alone")
        with prefixed(lambda: "[uki-virt] "):
            logger.info("$ dracut\nsecond line")
        with prefixed(lambda: ""):
            logger.info("alone again")
    assert log.read_text().splitlines() == [
        "alone",
        "[uki-virt] $ dracut",
        "[uki-virt] second line",
        "alone again",
    ]
