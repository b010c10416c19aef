"""Package version globs resolved against `apt-cache madison` data (pure parts)."""

from __future__ import annotations

import pytest

from composer.core.errors import ComposerError
from composer.rootfs.versions import parse_madison, pick_version, resolve_pins

MADISON = """\
      tmux |     3.5a-3 | http://deb.debian.org/debian trixie/main amd64 Packages
      tmux |     3.3a-3 | http://deb.debian.org/debian bookworm/main amd64 Packages
   busybox | 1:1.37.0-6 | http://deb.debian.org/debian trixie/main amd64 Packages
      tmux |     3.5a-3 | http://deb.debian.org/debian trixie/main Sources
"""


def test_parse_madison_keeps_order_and_drops_sources() -> None:
    assert parse_madison(MADISON) == {"tmux": ["3.5a-3", "3.3a-3"], "busybox": ["1:1.37.0-6"]}
    assert parse_madison("N: Unable to locate package nope\n") == {}


@pytest.mark.parametrize(
    ("glob", "want"),
    [("3.*", "3.5a-3"), ("3.3*", "3.3a-3"), ("3.5a-3", "3.5a-3"), ("3.?a-3", "3.5a-3"),
     ("4.*", None), ("1:1.37.*", None)],
)  # fmt: skip
def test_pick_version_first_match_is_the_highest(glob: str, want: str | None) -> None:
    assert pick_version(glob, ["3.5a-3", "3.3a-3"]) == want


def test_resolve_pins_names_every_problem() -> None:
    available = parse_madison(MADISON)
    assert resolve_pins([("tmux", "3.3*"), ("busybox", "1:1.37.*")], available, "trixie") == {
        "tmux": "3.3a-3",
        "busybox": "1:1.37.0-6",
    }
    with pytest.raises(ComposerError) as info:
        resolve_pins([("tmux", "9.*"), ("nope", "1.*")], available, "trixie")
    msg = str(info.value)
    assert "tmux: no version matches '9.*'" in msg and "3.5a-3" in msg
    assert "nope: not in trixie" in msg
