"""What a build stage is: one name (used in the log's ``# stage: NAME`` lines, the stage
cache's entries, timings, progress output, ``dps-composer plan`` and the README), what it
reads (its declared inputs: fields of the plan and facts the build finds out), which stages'
results it takes (``after``), and the function that does it.

A stage's cache key is derived from those declarations alone (composer/build/keys.py): the
values of its inputs and the keys of the stages it comes after. So a changed input misses
exactly the stages that read it and every stage after them, and a stage can read nothing
its key does not cover without saying so here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from composer.build.context import Context
    from composer.plan.plan import Plan


def always(_plan: Plan) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    name: str
    summary: str  # what it does, in one line (plan output, docs)
    inputs: tuple[str, ...]  # "plan.FIELD" (or "plan.FIELD.KEY") and facts (FACTS)
    run: Callable[[Context], None]
    after: tuple[str, ...] = ()  # stages whose results it takes
    cached: bool = False  # has entries in the stage cache (stages/NAME/KEY)
    applies: Callable[[Plan], bool] = field(default=always)  # runs for this plan?
    # may start before the whole image is looked up in the stage cache (composer/build/pipeline.py),
    # and is stopped when it is found there
    early: bool = False
