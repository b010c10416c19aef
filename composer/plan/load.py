"""A blueprint as the plan reads it: the model (composer/blueprint/load.py), then what needs
the partition layout and the target's tree: every layout problem, and mount points that cross
a directory link of the distribution's root tree (composer/target/hierarchy.py). Each problem
is named with the blueprint's file, line, key and reason."""

from __future__ import annotations

from pathlib import Path

from composer.blueprint import load as blueprint
from composer.blueprint.lines import dotted
from composer.blueprint.model import Blueprint
from composer.blueprint.text import read_blueprint
from composer.core.errors import Problem
from composer.plan.keydirs import link_problems, shape_problems
from composer.plan.layout import LayoutErrors, layout_of
from composer.target.hierarchy import crossed_link


def parse(text: str, file: str = "<blueprint>") -> Blueprint:
    """Blueprint text, parsed and checked (every refusal names the file, line and key)."""
    return checked(blueprint.parse(text, file))


def load(path: Path) -> Blueprint:
    """The blueprint file ``path``, checked, its [[customizations.files]] ``uri`` read; its
    key directories must lie below its directory (composer/plan/keydirs.py)."""
    bp = parse(read_blueprint(path), str(path))
    if problems := shape_problems(bp) or link_problems(bp, path):
        raise bp.error(problems)
    return blueprint.read_uris(bp, path)


def checked(bp: Blueprint) -> Blueprint:
    """``bp`` if its partition layout can be made and its mount points are real directories."""
    try:
        layout_of(bp)
    except LayoutErrors as exc:
        raise bp.error([Problem(dotted(e.key), e.message) for e in exc.errors]) from None
    problems = _mountpoint_links(bp)
    if problems:
        raise bp.error(problems)
    return bp


def _mountpoint_links(bp: Blueprint) -> list[Problem]:
    """A mount point may not cross a directory link of the target's tree (/var/run -> /run):
    the build splits the tree at real directories only (composer/target/hierarchy.py)."""
    c = bp.customizations
    entries: list[tuple[tuple[str | int, ...], str | None]] = [
        (("customizations", "filesystem", i), f.mountpoint) for i, f in enumerate(c.filesystem)
    ]
    if c.disk is not None:
        entries += [
            (("customizations", "disk", "partitions", i), p.mountpoint)
            for i, p in enumerate(c.disk.partitions)
        ]
    problems = []
    for key, mountpoint in entries:
        link = crossed_link(bp.distro, mountpoint) if mountpoint else None
        if link is not None:
            problems.append(Problem(
                dotted((*key, "mountpoint")),
                f"{mountpoint} crosses the link {link} of {bp.distro}'s root tree; a mount "
                "point must be a real directory: use the link's target",
            ))  # fmt: skip
    return problems
