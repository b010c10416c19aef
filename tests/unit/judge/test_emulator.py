"""Which QEMU/OVMF/swtpm a boot takes: the mode from the option or DPS_COMPOSER_BOOT_TOOLS, and
the fallback to the host's programs when the tree cannot be made."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core.errors import ComposerError
from composer.judge.emulator import boot_tools_mode, choose_boot_tools
from composer.spec.arch import get_arch
from composer.toolchain.boottools import HOST, BootToolsError

X86 = get_arch("x86_64")


def test_mode_from_option_then_environment_then_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPS_COMPOSER_BOOT_TOOLS", raising=False)
    assert boot_tools_mode() == "auto"
    monkeypatch.setenv("DPS_COMPOSER_BOOT_TOOLS", "Host")
    assert boot_tools_mode() == "host"
    assert boot_tools_mode("tree") == "tree"
    monkeypatch.setenv("DPS_COMPOSER_BOOT_TOOLS", "qemu9")
    with pytest.raises(ComposerError, match="DPS_COMPOSER_BOOT_TOOLS.*auto, tree, host"):
        boot_tools_mode()


def unmakeable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "trees").write_text("not a directory")
    monkeypatch.setenv("DPS_COMPOSER_CACHE_DIR", str(cache))


def test_auto_falls_back_to_the_host_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unmakeable_cache(tmp_path, monkeypatch)
    said: list[str] = []
    tools, note = choose_boot_tools("auto", X86, said.append)
    assert tools == HOST
    assert note.startswith("boot tools: the host's QEMU, OVMF and swtpm, because cannot make")
    assert said and "using the host's" in said[0]


def test_tree_mode_fails_when_the_tree_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unmakeable_cache(tmp_path, monkeypatch)
    with pytest.raises(BootToolsError) as err:
        choose_boot_tools("tree", X86, lambda _: None)
    assert err.value.exit_code == 3


def test_host_mode_never_makes_a_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unmakeable_cache(tmp_path, monkeypatch)
    assert choose_boot_tools("host", X86, lambda _: None) == (
        HOST,
        "boot tools: the host's QEMU, OVMF and swtpm (requested)",
    )
