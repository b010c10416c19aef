"""Bit-identical images: one timestamp for everything (SOURCE_DATE_EPOCH).

The epoch is the user's ``SOURCE_DATE_EPOCH`` when set; otherwise, for Debian, the date of
the archive index the packages came from (the same packages give the same epoch, and the
cache key already covers that index); otherwise a fixed date.
"""

from __future__ import annotations

import os
from pathlib import Path

from composer.core.errors import ComposerError
from composer.plan.plan import Plan
from composer.rootfs.versions import release_epoch

FALLBACK_EPOCH = 1735689600  # 2025-01-01T00:00:00Z


def source_date_epoch(plan: Plan) -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env is not None:
        try:
            return int(env)
        except ValueError:
            raise ComposerError(
                f"SOURCE_DATE_EPOCH={env!r}: must be a Unix time in seconds, e.g. 1735689600"
            ) from None
    if plan.distribution.family == "apt":
        found = release_epoch(plan.mirror, plan.suite)
        if found is not None:
            return found
    return FALLBACK_EPOCH


def clamp_mtimes(tree: Path, epoch: int) -> int:
    """Set every modification (and access) time in ``tree`` newer than ``epoch`` to
    ``epoch``, symlinks included; returns how many were changed."""
    changed = 0
    stack = [str(tree)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if st.st_mtime > epoch:
                    os.utime(entry.path, (epoch, epoch), follow_symlinks=False)
                    changed += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    if tree.stat().st_mtime > epoch:
        os.utime(tree, (epoch, epoch))
    return changed
