"""Which QEMU libguestfs starts: the boot tools tree's once a boot has made that tree, else
the host's; a user's LIBGUESTFS_HV or DPS_COMPOSER_BOOT_TOOLS=host wins (no appliance is
launched here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composer.core import paths
from composer.spec.arch import get_arch
from composer.toolchain import boottools
from composer.toolchain.guestfs import hypervisor

from .test_boottools import fake_tree


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    for name in ("LIBGUESTFS_HV", paths.BOOT_TOOLS_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def made_tree(cache: Path) -> Path:
    """A tree as a boot leaves it: completed, and named by its request's pointer."""
    root = fake_tree(cache / "trees" / "boot-trixie-amd64-abc")
    boottools.complete(root)
    host = boottools.host_arch()
    key = boottools._request_key(host, boottools.boot_packages(get_arch("x86_64")))
    pointer = cache / "trees" / f"boot-trixie-{host.debian}-{key}.json"
    pointer.write_text(json.dumps({"tree": root.name}))
    return root


def test_the_hosts_qemu_without_a_tree(cache: Path) -> None:
    assert hypervisor() is None


def test_the_trees_qemu_once_a_boot_made_the_tree(cache: Path) -> None:
    root = made_tree(cache)
    assert hypervisor() == root / boottools.GUESTFS_HV


def test_a_tree_of_an_older_layout_is_not_used(cache: Path) -> None:
    (made_tree(cache) / boottools.GUESTFS_HV).unlink()
    assert hypervisor() is None


@pytest.mark.parametrize(
    ("name", "value"), [("LIBGUESTFS_HV", "/opt/qemu"), (paths.BOOT_TOOLS_ENV, "host")]
)
def test_the_user_decides_first(
    cache: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    made_tree(cache)
    monkeypatch.setenv(name, value)
    assert hypervisor() is None
