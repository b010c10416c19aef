"""uki-virt end to end: the package repository `uki-virt build` makes, the UKI's independence
from the tree it is built in, and the default image (which lists uki-virt) with the package
installed, its ESP copy, purge and reinstall through real dpkg, and the cache across builds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest

from composer.build.placed_uki import prepare_repo
from composer.core import paths
from composer.core.chroot import run_in
from composer.core.log import log_file
from composer.image.read import read_ext4_file, read_vfat_file
from composer.plan.load import parse
from composer.plan.plan import make_plan
from composer.spec.arch import get_arch
from composer.spec.pe import file_sections, sections
from composer.target.distros import get_distro
from composer.toolchain.toolstree import ensure_tools_tree
from composer.toolchain.ukify import build_uki
from composer.uki_virt import kernel
from composer.uki_virt.virt import UkiVirtConfig, sbat_line, sbat_text

from .conftest import ROOT, ModuleTmp, cli_json_schema, composer, manifest

pytestmark = pytest.mark.integration

NAME = "debian-uki-sdboot"
# the default blueprint's command line: the repository here and its image share one build
CMDLINE = "console=tty0 console=ttyS0 audit=0"


def _cache() -> Path:
    return Path(os.environ.get("DPS_COMPOSER_CACHE_DIR") or paths.cache_dir())


@pytest.fixture(scope="module")
def uki_repo(module_tmp: ModuleTmp) -> Path:
    out = module_tmp.mktemp("uki-repo")
    built = composer(
        "uki-virt", "build", "--distro", "debian-13", "--cmdline", CMDLINE, "-o", str(out),
        "--json=short",
    )  # fmt: skip
    summary = json.loads(built.stdout)  # --json: the repository's files and the kernel
    jsonschema.validate(summary, cli_json_schema("uki-virt"))
    assert summary["files"] and all(Path(f).is_file() for f in summary["files"])
    return out


def _deb(repo: Path) -> Path:
    return next(repo.glob("uki-virt-*.deb"))


def _kver(repo: Path) -> str:
    m = re.match(r"uki-virt-(.+)_[^_]+_[^_]+\.deb$", _deb(repo).name)
    assert m, _deb(repo).name
    return m.group(1)


def _packaged_uki(repo: Path, dest: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(_deb(repo)), str(dest)], check=True)
    return dest / f"usr/lib/modules/{_kver(repo)}/vmlinuz-virt.efi"


def test_repository_holds_deb_metapackage_and_rpm(uki_repo: Path, tmp_path: Path) -> None:
    kver = _kver(uki_repo)
    index = (uki_repo / "Packages").read_text()
    assert "Package: uki-virt\n" in index and f"Package: uki-virt-{kver}\n" in index
    assert f"Depends: uki-virt-{kver} (= " in index
    assert f"Depends: linux-image-{kver} (= " in index
    assert (uki_repo / "Release").is_file() and (uki_repo / "repodata/repomd.xml").is_file()
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(_deb(uki_repo))], capture_output=True, text=True, check=True
    ).stdout
    assert f"./usr/lib/modules/{kver}/vmlinuz-virt.efi" in listing
    assert "root/root" in listing
    rpm = next(uki_repo.glob("kernel-uki-virt-*.rpm"))
    rpm_info = subprocess.run(
        ["rpm", "-qp", "--provides", "--list", str(rpm)], capture_output=True, text=True, check=True
    ).stdout
    assert "installonlypkg(kernel)" in rpm_info
    assert f"/usr/lib/modules/{kver}/vmlinuz-virt.efi" in rpm_info
    s = file_sections(_packaged_uki(uki_repo, tmp_path))
    assert s[".uname"].rstrip(b"\0").decode() == kver
    assert s[".cmdline"].rstrip(b"\0").decode() == CMDLINE
    assert b"ID=debian" in s[".osrel"]
    assert sbat_line(kver).strip().encode() in s[".sbat"]


def test_uki_holds_no_data_of_the_tree_it_was_built_in(uki_repo: Path, tmp_path: Path) -> None:
    """The same kernel in two different trees (one with another host's /etc, other mtimes
    and extra files) and two work directories: byte-identical .initrd and .cmdline, and the
    .initrd equal to the packaged UKI's."""
    cache = _cache()
    distro, arch = get_distro("debian-13"), get_arch("x86_64")
    tools_tree = ensure_tools_tree(cache, arch)
    pkg = kernel.resolve_kernel(distro, arch, _kver(uki_repo), cache=cache)
    base = kernel.base_files_version(distro, arch, cache=cache)
    debs = kernel.download([(pkg.name, pkg.version), ("base-files", base)], distro, arch,
                           cache=cache)  # fmt: skip
    unpacked = kernel.unpack_kernel(debs[0], debs[1], tmp_path / "a", pkg.kver)
    tree_a = kernel.depmod_in(tools_tree, unpacked, pkg.kver)
    tree_b = tmp_path / "b"
    shutil.copytree(tree_a, tree_b, symlinks=True)
    (tree_b / "etc/modprobe.d").mkdir(parents=True)
    (tree_b / "etc/hostname").write_text("some-other-host\n")
    (tree_b / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (tree_b / "etc/modprobe.d/local.conf").write_text("options virtio_blk queue_depth=4\n")
    for path in tree_b.rglob("*"):
        os.utime(path, (time.time(), time.time()), follow_symlinks=False)
    config = UkiVirtConfig.for_arch(arch)
    built = [
        build_uki(
            tools_tree,
            tree,
            pkg.kver,
            config.cmdline,
            arch.efi,
            tmp_path / f"w{i}",
            config.usr_type,
            sbat=sbat_text(pkg.kver),
        )  # fmt: skip
        for i, tree in enumerate((tree_a, tree_b))
    ]
    a, b = (file_sections(u.path) for u in built)
    assert a[".initrd"] == b[".initrd"]
    assert a[".cmdline"] == b[".cmdline"] == config.cmdline.encode()
    assert a[".linux"] == b[".linux"] and a[".osrel"] == b[".osrel"]
    packaged = file_sections(_packaged_uki(uki_repo, tmp_path / "pkg"))
    assert packaged[".initrd"] == a[".initrd"]


def _dpkg_status(status: str, package: str) -> str | None:
    for stanza in status.split("\n\n"):
        if f"Package: {package}\n" in stanza + "\n":
            m = re.search(r"^Status: (.+)$", stanza, re.M)
            return m.group(1) if m else None
    return None


def test_image_has_uki_virt_installed_and_its_esp_copy(default_image: Path) -> None:
    raw = default_image / f"{NAME}.raw"
    m = manifest(default_image)
    kver = m["uki"]["kernel_version"]
    esp, root = (p["offset"] for p in m["disk"]["partitions"][:2])
    status = read_ext4_file(raw, root, "/var/lib/dpkg/status").decode()
    assert _dpkg_status(status, "uki-virt") == "install ok installed"
    assert _dpkg_status(status, f"uki-virt-{kver}") == "install ok installed"
    assert m["packages"]["uki-virt"]
    record = read_ext4_file(raw, root, f"/var/lib/uki-virt/{kver}").decode().strip()
    assert record == f"/efi/{m['uki']['path']}"  # where the postinst put it: the ESP at /efi
    on_esp = read_vfat_file(raw, esp, m["uki"]["path"])
    assert on_esp == read_ext4_file(raw, root, f"/usr/lib/modules/{kver}/vmlinuz-virt.efi")
    assert sections(on_esp)[".cmdline"].rstrip(b"\0").decode() == m["uki"]["cmdline"]
    sources = subprocess.run(
        ["debugfs", "-R", "cat /etc/apt/sources.list", f"{raw}?offset={root}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "deb.debian.org" in sources and "trusted=yes" not in sources
    assert "uki-virt" in m["timings"]
    # installed into the tree by dpkg after the root's packages: nothing of that left behind
    for directory, unwanted in (
        ("/var/log", "dpkg.log"),
        ("/var/lib/dpkg", "-old"),
        ("/tmp", "uki-virt"),
        ("/efi", "EFI"),  # the ESP's mount point stays empty: the UKI went onto the ESP image
    ):
        names = _ext4_names(raw, root, directory)
        assert not [n for n in names if unwanted in n], (directory, names)


def _ext4_names(raw: Path, offset: int, directory: str) -> list[str]:
    listing = subprocess.run(
        ["debugfs", "-R", f"ls -p {directory}", f"{raw}?offset={offset}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # ls -p: /inode/mode/uid/gid/name/size/ per entry
    names = [line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6]
    assert "." in names, listing  # the directory was there
    return names


def test_purge_removes_the_esp_copy_and_reinstall_puts_it_back(
    default_image: Path, uki_repo: Path, tmp_path: Path
) -> None:
    """The image's own root file system, the ESP copy where the booted system has it
    (/efi), real dpkg in a chroot."""
    raw = default_image / f"{NAME}.raw"
    m = manifest(default_image)
    kver = m["uki"]["kernel_version"]
    esp, root = (p["offset"] for p in m["disk"]["partitions"][:2])
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(
        ["debugfs", "-R", f"rdump / {tree}", f"{raw}?offset={root}"], check=True,
        capture_output=True,
    )  # fmt: skip
    copy = tree / "efi" / m["uki"]["path"]
    copy.parent.mkdir(parents=True)
    copy.write_bytes(read_vfat_file(raw, esp, m["uki"]["path"]))
    run_in(tree, ["dpkg", "--purge", "uki-virt", f"uki-virt-{kver}"])
    assert not copy.exists()
    assert not (tree / f"var/lib/uki-virt/{kver}").exists()
    assert not (tree / f"usr/lib/modules/{kver}/vmlinuz-virt.efi").exists()
    assert (tree / "efi").is_dir()
    shutil.copy(_deb(uki_repo), tree / "tmp/uki-virt.deb")
    run_in(tree, ["dpkg", "-i", "/tmp/uki-virt.deb"])
    assert copy.read_bytes() == (tree / f"usr/lib/modules/{kver}/vmlinuz-virt.efi").read_bytes()


def test_another_blueprint_reuses_the_uki_virt_build(default_image: Path, tmp_path: Path) -> None:
    """A second blueprint listing uki-virt, after the default image was built: its uki-virt
    stage (before the root tree: composer/build/stages/uki_virt.py) finds the cached repository: no dracut,
    no ukify, the same UKI. (A whole second image build shows the same in its log; measured
    in the README.)"""
    text = (ROOT / "blueprints/debian-uki-sdboot.toml").read_text()
    text = text.replace(f'name = "{NAME}"', 'name = "uki-virt-second"')
    text = text.replace('hostname = "dps-debian"', 'hostname = "second"')
    plan = make_plan(parse(text, "second.toml"), "second.toml")
    log = tmp_path / "second.log"
    with log_file(log):
        build = prepare_repo(plan, _cache())
    assert build is not None and build.cached
    text_log = log.read_text()
    assert "cached build" in text_log
    assert "dracut --quiet" not in text_log and "ukify build" not in text_log
    first = manifest(default_image)
    assert build.uki_sha256 == first["uki"]["sha256"]  # the image's UKI is the cached build's
    assert f"uki-virt-{first['uki']['kernel_version']}" in " ".join(build.files)
