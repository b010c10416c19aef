"""The order test files run in: the longest integration files first.

The suite runs with ``-n 2 --dist loadfile`` (README.md, .ci/run): pytest-xdist hands whole
files to the two workers in collection order as they come free. Started last, a long file
keeps one worker busy while the other has nothing left to do; started first, the short files
fill the gaps and both workers end together (longest-processing-time-first scheduling).
xdist's own reordering (by how many tests a file has, not how long they take) is turned off.
"""

from __future__ import annotations

import signal

import pytest

# Integration files by how long they take on two CI cores, longest first (measured with
# --durations, 2026-12-03; files not named here keep their collection order after these)
LONGEST_FIRST = (
    "test_sealed.py",
    "test_layouts.py",
    "test_boot_chains.py",
    "test_matrix.py",
    "test_faults.py",
    "test_foreign_images.py",
    "test_fixup_legacy.py",
    "test_field_corpus.py",
    "test_default_image.py",
    "test_measured_boot.py",
    "test_boot_faults.py",
    "test_qemu_scripts.py",
    "test_stage_cache.py",
    "test_uki_virt.py",
    "test_mkfs.py",
)


def file_rank(nodeid: str) -> int:
    """Where a test's file goes: its place in LONGEST_FIRST, else after all of them."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/integration/"):
        name = path.rsplit("/", 1)[-1]
        if name in LONGEST_FIRST:
            return LONGEST_FIRST.index(name)
    return len(LONGEST_FIRST)


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background of a non-interactive shell (`cmd &` in a script)
    # inherits SIGINT ignored (POSIX, Shell Command Language 2.11), and so would every build
    # and boot it starts: the tests that interrupt them with SIGINT need Ctrl-C's default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's --no-loadscope-reorder
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: file_rank(item.nodeid))  # stable: a file's tests keep order
