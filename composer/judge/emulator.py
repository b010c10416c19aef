"""Which QEMU, OVMF and swtpm a boot uses: the cached trixie boot tools tree
(composer/toolchain/boottools.py) or the host's.

``auto`` (the default) takes the tree and falls back to the host's programs when the tree
cannot be made (no network, no mmdebstrap, no space); the verdict's notes say which was used
and why. ``tree`` makes a missing tree an error (exit 3); ``host`` never makes one.
"""

from __future__ import annotations

from collections.abc import Callable

from composer.core import paths
from composer.core.errors import ComposerError
from composer.spec.arch import Arch
from composer.toolchain.boottools import HOST, BootTools, BootToolsError, ensure_boot_tools

MODES = ("auto", "tree", "host")


def boot_tools_mode(requested: str = "") -> str:
    """The mode asked for: ``requested``, else DPS_COMPOSER_BOOT_TOOLS, else auto."""
    mode = (requested or paths.boot_tools() or "auto").lower()
    if mode not in MODES:
        raise ComposerError(
            f"unknown boot tools {mode!r} (--boot-tools or {paths.BOOT_TOOLS_ENV}): "
            f"use one of {', '.join(MODES)}"
        )
    return mode


def choose_boot_tools(
    requested: str, guest: Arch, say: Callable[[str], None]
) -> tuple[BootTools, str]:
    """The tools to boot with, and a note for the verdict that says which and why."""
    mode = boot_tools_mode(requested)
    if mode == "host":
        return HOST, "boot tools: the host's QEMU, OVMF and swtpm (requested)"
    try:
        tools = ensure_boot_tools(paths.cache_dir(), guest)
    except BootToolsError as err:
        if mode == "tree":
            raise
        say(f"boot tools: {err}; using the host's QEMU, OVMF and swtpm")
        return HOST, f"boot tools: the host's QEMU, OVMF and swtpm, because {err}"
    return tools, f"boot tools: {tools.origin}"
