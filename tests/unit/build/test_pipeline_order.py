"""Which stages of a build may overlap: from the stages' declarations (what they come after,
the facts they read), the whole-image lookup, and the one-at-a-time order after it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from composer.build.context import Context
from composer.build.pipeline import LOOKUP, stage_needs, task_order
from composer.build.schedule import Schedule, Task
from composer.build.space import Places
from composer.build.stages import package_check
from composer.build.stages.sequence import STAGES, stage
from composer.core.lifetime import Stopped, StopScope, stoppable
from composer.core.log import log_file, prefixed
from composer.plan.load import parse
from composer.plan.plan import make_plan


def needs(name: str, applying: tuple[str, ...] = ()) -> set[str]:
    stages = [s for s in STAGES if not applying or s.name in applying]
    return set(stage_needs(stage(name), stages))


def test_the_front_stages_overlap_by_their_declarations() -> None:
    assert needs("tools-tree") == set()
    assert needs("resolve") == set()  # alongside the tools tree and uki-virt
    # uki-virt fetches and unpacks the kernel while the tools tree is made; it takes the tree
    # (its lock) only for depmod and dracut
    assert needs("uki-virt") == set()
    # the package set is judged while uki-virt builds: it reads resolve's facts only
    assert needs("package-check") == {"resolve"}


@pytest.mark.parametrize(
    ("long", "beside"),
    [
        ("tools-tree", "package-check"),  # package-check downloads while the tools tree is made
        ("tools-tree", "uki-virt"),  # ... and so does uki-virt (the kernel)
        ("uki-virt", "root"),  # the root tree is installed while uki-virt is built
        ("package-check", "root"),  # ... and while package-check judges what it downloaded
    ],
)
def test_the_long_front_stages_overlap_in_the_schedule_the_build_runs(
    long: str, beside: str
) -> None:
    """A cold build's long front stages overlap in the schedule the build runs: the task of
    ``long`` ends only once ``beside``'s has started (it would wait in vain, for 10 s, if
    ``beside`` were held back until ``long`` ended); both end before the uki stage."""
    started = threading.Event()
    seen: list[bool] = []

    def run(name: str, waits_for: frozenset[str]) -> Task:
        def work() -> None:
            if name == long:
                seen.append(started.wait(10))
            elif name == beside:
                started.set()

        return Task(name, waits_for, work)

    schedule = Schedule([run(name, waits_for) for name, waits_for in task_order(STAGES)])
    schedule.run()
    assert seen == [True]
    assert schedule.finished.index(long) < schedule.finished.index("uki")
    assert schedule.finished.index(beside) < schedule.finished.index("uki")


def test_the_root_tree_is_installed_beside_uki_virt() -> None:
    """It is installed before the image is looked up (its key does not read uki-virt's
    repository) and beside package-check, whose downloads it waits for; the uki stage
    installs uki-virt into it and waits for both."""
    assert needs("root") == {"resolve"}  # package-check's downloads: an event (below)
    assert {"root", "uki-virt", "package-check", "tools-tree", LOOKUP} <= needs("uki")


def test_after_the_lookup_stages_run_one_at_a_time_in_their_order() -> None:
    names = [s.name for s in STAGES]
    for before, name in zip(names[4:], names[5:], strict=False):
        assert {before, LOOKUP} <= needs(name), name


def test_a_stage_that_does_not_apply_is_not_waited_for() -> None:
    without = tuple(s.name for s in STAGES if s.name != "uki-virt")
    assert "uki-virt" not in needs("uki", without)


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


def _context(tmp_path: Path, extra: str = "") -> Context:
    places = Places(tmp_path, tmp_path, tmp_path)
    plan = make_plan(parse(f'name = "n"\n{extra}'))
    return Context(plan, tmp_path, tmp_path, tmp_path, tmp_path / "log", places)


def test_the_root_stage_waits_for_what_other_stages_signal(tmp_path: Path) -> None:
    """The root stage waits (stoppable) for the whole image's lookup before it copies a
    cached tree out, and for package-check's downloads before it installs packages: when the
    image is found whole or the package set is refused, the build stops the wait."""
    ctx = _context(tmp_path)
    scope = StopScope()
    waited: list[str] = []

    def wait() -> None:
        with stoppable(scope):
            try:
                ctx.wait_until(ctx.image_missed)
                waited.append("missed")
            except Stopped:
                waited.append("stopped")

    first = threading.Thread(target=wait)
    first.start()
    first.join(0.3)
    assert first.is_alive()  # nothing looked up yet
    ctx.image_missed.set()
    first.join(5)
    assert waited == ["missed"]

    ctx = _context(tmp_path)
    second = threading.Thread(target=wait)
    second.start()
    scope.stop()  # the image was found: the schedule stops what still runs
    second.join(5)
    assert waited == ["missed", "stopped"]
    ctx.wait_until(ctx.packages_downloaded)  # outside a schedule nothing runs beside: no wait


def test_package_check_signals_the_downloads_also_when_it_downloads_nothing(
    tmp_path: Path,
) -> None:
    """dnf targets: dnf resolves and downloads while it installs, so the root may start."""
    ctx = _context(tmp_path, 'distro = "fedora-41"\n')
    # in a thread of its own, as the schedule runs it: the stage lowers its thread's priority
    stage_thread = threading.Thread(target=package_check.STAGE.run, args=(ctx,))
    stage_thread.start()
    stage_thread.join()
    assert ctx.packages_downloaded.is_set()
