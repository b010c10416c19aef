"""The dnf backend end to end against a local RPM repository built here with rpmbuild: no
Fedora mirror is reachable from the build machines. The repository holds a base package (a
static busybox as /bin/sh, /etc/os-release, the /boot/efi mount point), a kernel-uki-virt made
by the composer's own RPM writer (composer/uki_virt/packages.py) with a small payload, one
dependency of it, and kernel-core + grub2-efi-x64 that nothing asks for."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from composer.blueprint.repositories import Repository
from composer.build.placed_uki import take_placed_uki
from composer.rootfs import dnf
from composer.spec.arch import get_arch
from composer.target.distros import get_distro
from composer.uki_virt import packages, repo
from composer.uki_virt.rpmpkg import RpmSpec, build_rpm

from .conftest import ModuleTmp

pytestmark = pytest.mark.integration

KVER = "6.11.4-301.dpstest.x86_64"
EPOCH = 1700000000
APPLETS = ("sh", "cat", "cp", "mv", "mkdir", "rm", "rmdir", "head", "echo", "true")


def _tree(base: Path, name: str) -> Path:
    tree = base / "trees" / name
    tree.mkdir(parents=True)
    return tree


def _plain(name: str, **kw: object) -> RpmSpec:
    return RpmSpec(
        name=name,
        version="1.0",
        release="1",
        summary=f"test package {name}",
        description=f"test package {name}",
        arch="x86_64",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def rpm_repo(module_tmp: ModuleTmp) -> Path:
    base = module_tmp.mktemp("rpmrepo")
    out = base / "repo"
    out.mkdir()
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail(
            "busybox (busybox-static, scripts/apt-packages.txt) is needed for the test repo"
        )
    tb = _tree(base, "testbase")
    (tb / "usr/bin").mkdir(parents=True)
    shutil.copy(busybox, tb / "usr/bin/busybox")
    for applet in APPLETS:
        (tb / "usr/bin" / applet).symlink_to("busybox")
    (tb / "bin").symlink_to("usr/bin")
    (tb / "etc").mkdir()
    (tb / "etc/os-release").write_text('NAME="dps test"\nID=dpstest\nVERSION_ID=1\n')
    (tb / "boot/efi").mkdir(parents=True)
    (tb / "var/lib").mkdir(parents=True)
    build_rpm(tb, _plain("testbase", provides=("/bin/sh",)), out, epoch=EPOCH)
    mc = _tree(base, "modules-core")
    (mc / f"usr/lib/modules/{KVER}").mkdir(parents=True)
    (mc / f"usr/lib/modules/{KVER}/modules.dep").write_text("")
    build_rpm(mc, _plain("test-kernel-modules-core", requires=("testbase",)), out, epoch=EPOCH)
    for name in ("kernel-core", "grub2-efi-x64"):
        tree = _tree(base, name)
        (tree / "usr/share" / name).mkdir(parents=True)
        (tree / "usr/share" / name / "marker").write_text(name)
        build_rpm(tree, _plain(name), out, epoch=EPOCH)
    payload = base / "payload.efi"
    payload.write_bytes(b"MZ test UKI payload for " + KVER.encode())
    spec = packages.rpm_spec(KVER, "6.11.4-301", "x86_64", requires=("test-kernel-modules-core",))
    build_rpm(packages.stage(payload, KVER, base / "trees/uki"), spec, out, epoch=EPOCH)
    repo.index_rpm(out)
    return out


@pytest.fixture(scope="module")
def installed(rpm_repo: Path, module_tmp: ModuleTmp) -> Path:
    work = module_tmp.mktemp("dnfroot")
    root = work / "root"
    dnf.install_tree(
        root,
        distro=get_distro("fedora-41"),
        arch=get_arch("x86_64"),
        packages=["kernel-uki-virt"],
        repositories=[
            Repository(id="local-test", baseurls=(f"file://{rpm_repo}",), gpgcheck=False)
        ],
        cache=work / "cache",
    )
    return root


def test_dnf_installs_kernel_uki_virt_with_its_dependencies(installed: Path) -> None:
    names = dnf.installed_packages(installed, get_distro("fedora-41"))
    assert set(names) == {"kernel-uki-virt", "test-kernel-modules-core", "testbase"}, names
    assert names["kernel-uki-virt"] == "6.11.4-301.dps"
    # the rpm database is where Fedora keeps it
    assert (installed / "usr/lib/sysimage/rpm").is_dir()
    assert not (installed / "usr/share/kernel-core").exists()
    assert not (installed / "usr/share/grub2-efi-x64").exists()


def test_kernel_uki_virt_scripts_put_the_uki_on_the_esp(installed: Path, tmp_path: Path) -> None:
    uki = installed / f"usr/lib/modules/{KVER}/vmlinuz-virt.efi"
    copy = installed / f"boot/efi/EFI/Linux/dpstest-{KVER}.efi"
    assert copy.read_bytes() == uki.read_bytes()
    record = installed / f"var/lib/uki-virt/{KVER}"
    assert record.read_text().strip() == f"/boot/efi/EFI/Linux/dpstest-{KVER}.efi"
    # what the image build then does with it: onto the ESP image, out of the root tree
    work = tmp_path / "copy"
    shutil.copytree(installed, work, symlinks=True)
    placed = take_placed_uki(work, tmp_path / "uki")
    assert placed.rel == f"EFI/Linux/dpstest-{KVER}.efi" and placed.esp_dir == "boot/efi"
    assert placed.path.read_bytes() == uki.read_bytes() and placed.kernel_version == KVER
    assert not (work / "boot/efi/EFI").exists() and (work / "boot/efi").is_dir()


def test_erasing_kernel_uki_virt_removes_the_esp_copy(installed: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed, root, symlinks=True)
    subprocess.run(
        ["rpm", f"--root={root}", "--dbpath=/usr/lib/sysimage/rpm", "-e", "kernel-uki-virt"],
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert not (root / f"boot/efi/EFI/Linux/dpstest-{KVER}.efi").exists()
    assert not (root / f"var/lib/uki-virt/{KVER}").exists()
    assert (root / "boot/efi").is_dir()
