"""The boot tools tree: how its programs are started, what it holds, which tree a request
finds (a tree made on disk by hand: no mmdebstrap, no network)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from composer.spec.arch import get_arch
from composer.toolchain import boottools
from composer.toolchain.boottools import (
    HOST,
    BootTools,
    BootToolsError,
    boot_packages,
    ensure_boot_tools,
    find_boot_tools,
    installed_versions,
)

STATUS = """\
Package: qemu-system-x86
Status: install ok installed
Version: 1:10.0.13+ds-0+deb13u1

Package: ovmf
Status: install ok installed
Version: 2025.02-8+deb13u1

Package: gone
Status: deinstall ok config-files
Version: 1.0
"""


def fake_tree(root: Path) -> Path:
    triplet = f"{os.uname().machine}-linux-gnu"
    (root / "usr/lib" / triplet).mkdir(parents=True)
    (root / "usr/lib" / triplet / "ld-linux-test.so.2").write_bytes(b"")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/qemu-system-x86_64").write_bytes(b"")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    return root


def test_installed_versions_lists_installed_packages_only(tmp_path: Path) -> None:
    versions = dict(installed_versions(fake_tree(tmp_path / "t")))
    assert versions == {"qemu-system-x86": "1:10.0.13+ds-0+deb13u1", "ovmf": "2025.02-8+deb13u1"}


def test_tree_programs_run_through_the_trees_loader_and_libraries(tmp_path: Path) -> None:
    root = fake_tree(tmp_path / "t")
    tools = BootTools(root, installed_versions(root))
    argv = tools.command("qemu-system-x86_64")
    triplet = f"{os.uname().machine}-linux-gnu"
    assert argv[0] == str(root / "usr/lib" / triplet / "ld-linux-test.so.2")
    assert argv[1] == "--library-path" and str(root / "usr/lib" / triplet) in argv[2]
    assert argv[3] == str(root / "usr/bin/qemu-system-x86_64")
    assert tools.qemu_data_args() == ["-L", str(root / "usr/share/qemu")]
    assert tools.qemu_env()["QEMU_MODULE_DIR"].startswith(str(root))
    assert tools.firmware_dirs() == [root / "usr/share/qemu/firmware"]
    assert "qemu-system-x86 1:10.0.13" in tools.origin and "ovmf 2025.02" in tools.origin
    with pytest.raises(BootToolsError, match="swtpm: not in the boot tools tree"):
        tools.command("swtpm")


def test_host_tools_are_the_plain_names() -> None:
    assert HOST.command("swtpm") == ["swtpm"]
    assert HOST.qemu_env() == {} and HOST.qemu_data_args() == [] and HOST.firmware_dirs() is None
    assert HOST.origin == "host"


def test_packages_per_guest_architecture() -> None:
    assert boot_packages(get_arch("x86_64")) == ("qemu-system-x86", "ovmf", "swtpm", "swtpm-tools")
    assert boot_packages(get_arch("aarch64"))[:2] == ("qemu-system-arm", "qemu-efi-aarch64")


def test_a_request_finds_the_tree_its_pointer_names_without_making_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_mmdebstrap(*_a: object, **_k: object) -> None:
        raise AssertionError("nothing to make: the tree exists, or only found")

    monkeypatch.setattr(boottools, "mmdebstrap", no_mmdebstrap)
    cache = tmp_path / "cache"
    root = fake_tree(cache / "trees" / "boot-trixie-amd64-abc")
    x86 = get_arch("x86_64")
    key = boottools._request_key(boottools.host_arch(), boot_packages(x86))
    pointer = cache / "trees" / f"boot-trixie-{boottools.host_arch().debian}-{key}.json"
    assert find_boot_tools(cache, x86) is None  # no pointer yet: find makes nothing
    pointer.write_text(json.dumps({"tree": root.name}))
    found = ensure_boot_tools(cache, x86)
    assert found.root == root and dict(found.versions)["ovmf"] == "2025.02-8+deb13u1"
    assert find_boot_tools(cache, x86) == found


def test_a_tree_that_cannot_be_made_is_a_boot_tools_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "trees").write_text("a file where the trees directory belongs")
    with pytest.raises(BootToolsError, match="cannot make the boot tools tree"):
        ensure_boot_tools(cache, get_arch("x86_64"))


def test_a_completed_tree_is_its_own_qemu_bundle_and_starts_libguestfs_qemu(
    tmp_path: Path,
) -> None:
    """QEMU looks for its modules and data below <its executable's directory>/qemu-bundle (the
    tree's loader's directory): that is the tree. libguestfs's program starts the tree's QEMU
    through the tree's loader, from wherever the tree was moved (it is made elsewhere)."""
    made = fake_tree(tmp_path / "made")
    triplet = f"{os.uname().machine}-linux-gnu"
    loader = made / "usr/lib" / triplet / "ld-linux-test.so.2"
    loader.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    loader.chmod(0o755)
    boottools.complete(made)
    root = tmp_path / "a tree's new $place"
    made.rename(root)
    bundle = root / "usr/lib" / triplet / "qemu-bundle"
    assert bundle.resolve() == root.resolve()
    assert (bundle / "usr/bin/qemu-system-x86_64").is_file()
    hv = BootTools(root, installed_versions(root)).guestfs_hv()
    assert hv is not None and os.access(hv, os.X_OK)
    out = subprocess.run([hv, "-device", "?", "a b"], check=True, capture_output=True, text=True)
    lib = root / "usr/lib" / triplet
    assert out.stdout.splitlines() == [
        "--library-path",
        f"{lib}:{root}/lib/{triplet}",
        f"{root}/usr/bin/qemu-system-{os.uname().machine}",
        "-device",
        "?",
        "a b",
    ]
