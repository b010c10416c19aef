"""Which composer made a thing: the package version and, when it runs from a git checkout,
the commit (so a manifest, a verdict or a JUnit report says exactly which code made it)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from composer import __version__
from composer.core import tools
from composer.core.errors import HostError

CHECKOUT = Path(__file__).resolve().parents[2]  # the repository root of an editable install


@dataclass(frozen=True)
class ComposerVersion:
    version: str  # the package version
    commit: str | None  # the git commit (with "-dirty" for uncommitted changes), None if none

    def __str__(self) -> str:
        return f"{self.version} ({self.commit})" if self.commit else self.version

    def to_dict(self) -> dict[str, str | None]:
        return {"version": self.version, "commit": self.commit}


def git_commit(checkout: Path = CHECKOUT) -> str | None:
    """HEAD of ``checkout`` (``-dirty`` when tracked files differ), None when it is not a git
    checkout of this project or git is missing: an installed package has no commit."""
    if not (checkout / ".git").exists() or not (checkout / "composer" / "__init__.py").is_file():
        return None
    base = ["git", "-c", f"safe.directory={checkout}", "-C", str(checkout)]
    try:
        head = tools.run([*base, "rev-parse", "--verify", "HEAD"], capture=True)
        changed = tools.run([*base, "status", "--porcelain", "--untracked-files=no"], capture=True)
    except HostError:
        return None
    commit = head.stdout.decode().strip()
    return commit + ("-dirty" if changed.stdout.strip() else "")


@functools.cache
def current() -> ComposerVersion:
    """This composer's version (git is asked once per process)."""
    return ComposerVersion(__version__, git_commit())
