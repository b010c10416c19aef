"""uki-virt's pure parts: archive metadata parsing, package metadata and scripts, initrd
listing, the placed-UKI hand-over, local repository hooks, dnf configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from composer.blueprint.repositories import Repository
from composer.build.placed_uki import (
    PlacedUkiError,
    archive_packages,
    drop_dpkg_backups,
    install_from_repos,
    take_placed_uki,
)
from composer.core.errors import BlueprintError, ToolError
from composer.plan.load import parse
from composer.plan.plan import make_plan
from composer.rootfs.dnf import dbpath, default_repositories, dnf_conf
from composer.rootfs.intree import InTreeError, Tree
from composer.rootfs.pkgset import deb_file_name
from composer.spec.arch import get_arch
from composer.target.distros import get_distro
from composer.toolchain import initrd
from composer.toolchain.pcrkey import generate_pcr_key, load_pcr_key
from composer.uki_virt import packages
from composer.uki_virt.debpkg import control_text
from composer.uki_virt.kernel import control_field, image_dependency
from composer.uki_virt.rpmpkg import spec_text
from composer.uki_virt.virt import UkiVirtConfig, sbat_line, sbat_text

from ..cli_run import cli
from ..hash_seeds import assert_same_across_processes

KVER = "6.12.43+deb13-amd64"
SHIM = "https://github.com/rhboot/shim/blob/main/SBAT.md"


def test_image_dependency_of_the_kernel_metapackage() -> None:
    assert image_dependency(f"linux-image-{KVER} (= 6.12.43-1)") == (KVER, "6.12.43-1")
    assert image_dependency("foo, linux-image-6.1.0-9-cloud-amd64") == ("6.1.0-9-cloud-amd64", None)
    assert image_dependency("linux-image-amd64-signed-template, bar") is None


def test_control_field_reads_the_first_stanza_only() -> None:
    text = "Package: a\nDepends: x\n\nPackage: b\nDepends: y\n"
    assert control_field(text, "Depends") == "x"
    assert control_field(text, "Version") is None


def test_deb_file_name_spells_the_epoch() -> None:
    assert deb_file_name("libcap2", "1:2.75-10", "amd64") == "libcap2_1%3a2.75-10_amd64.deb"


def test_control_text_orders_fields_and_folds_description() -> None:
    text = control_text(
        {"Description": "short\nlong line\n\nmore", "Version": "1", "Package": "p", "X-Extra": "e"}
    )
    assert text == (
        "Package: p\nVersion: 1\nDescription: short\n long line\n .\n more\nX-Extra: e\n"
    )


def test_deb_scripts_install_on_configure_and_remove_on_remove_and_purge() -> None:
    scripts = packages.deb_scripts(KVER)
    assert f"UKI_VIRT_KVER='{KVER}'" in scripts["postinst"]
    assert "configure) uki_virt_install" in scripts["postinst"]
    assert "remove|purge) uki_virt_remove" in scripts["postrm"]
    assert all(s.startswith("#!/bin/sh\nset -e\n") for s in scripts.values())


def test_rpm_spec_is_install_only_with_fedora_scriptlets() -> None:
    spec = packages.rpm_spec(KVER, "6.12.43-1", "x86_64")
    assert (spec.name, spec.version, spec.release) == ("kernel-uki-virt", "6.12.43", "1.dps")
    assert "installonlypkg(kernel)" in spec.provides
    text = spec_text(spec, [f"/usr/lib/modules/{KVER}/vmlinuz-virt.efi", "%dir /boot/efi"])
    assert "%posttrans\n" in text and "%preun\n" in text and "uki_virt_install" in text
    assert f'"/usr/lib/modules/{KVER}/vmlinuz-virt.efi"' in text and "\n%dir /boot/efi\n" in text
    assert packages.rpm_spec(KVER, "1:2.0", "x86_64").version == "2.0"


def test_sbat_line_names_the_kernel() -> None:
    line = sbat_line(KVER)
    assert line.startswith(f"uki-virt.dps-composer,1,dps-composer,uki-virt,{KVER},")
    assert line.endswith("\n") and line.count(",") == 5
    assert sbat_text(KVER) == f"sbat,1,SBAT Version,sbat,1,{SHIM}\n{line}"


def test_config_fingerprint_follows_the_command_line() -> None:
    arch = get_arch("x86_64")
    a = UkiVirtConfig.for_arch(arch).fingerprint(arch)
    b = UkiVirtConfig.for_arch(arch, "console=ttyS0").fingerprint(arch)
    assert a != b and a == UkiVirtConfig.for_arch(arch).fingerprint(arch)
    assert UkiVirtConfig.for_arch(arch).usr_type == "8484680c-9521-48c6-9c11-b0720656f69e"


def test_config_fingerprint_follows_the_pcr_policy_key(tmp_path: Path) -> None:
    arch = get_arch("x86_64")
    for name in ("one", "two"):
        (tmp_path / name).mkdir(mode=0o700)
        generate_pcr_key(tmp_path / name)
    one = UkiVirtConfig.for_arch(arch, pcr_keys=str(tmp_path / "one"))
    two = UkiVirtConfig.for_arch(arch, pcr_keys=str(tmp_path / "two"))
    plain = UkiVirtConfig.for_arch(arch).fingerprint(arch)
    assert plain["pcr_policy"] is None
    assert one.fingerprint(arch)["pcr_policy"] == load_pcr_key(tmp_path / "one").fingerprint
    assert len({str(plain), str(one.fingerprint(arch)), str(two.fingerprint(arch))}) == 3


def test_uki_virt_build_refuses_a_missing_pcr_key_directory_at_once(tmp_path: Path) -> None:
    done = cli(
        "uki-virt", "build", "--distro", "debian-13", "-o", tmp_path / "repo",
        "--pcr-keys", tmp_path / "none", "--cache-dir", tmp_path / "cache",
    )  # fmt: skip
    assert done.returncode == 2 and "--pcr-keys" in done.stderr and "keys generate" in done.stderr
    assert not (tmp_path / "cache" / "uki-virt").exists()


def test_cache_key_and_package_texts_are_the_same_in_processes_with_different_hash_seeds() -> None:
    """The uki-virt cache key (its config fingerprint included) and what goes into its
    packages are reused by later runs: nothing in them may follow a process's hash seed."""
    code = f"""
from composer.spec.arch import get_arch
from composer.target.distros import get_distro
from composer.uki_virt import packages
from composer.uki_virt.kernel import KernelPackage
from composer.uki_virt.virt import UkiVirtConfig, cache_key, sbat_text
arch = get_arch("x86_64")
pkg = KernelPackage("linux-image-{KVER}", "6.12.43-1", "{KVER}", "amd64")
config = UkiVirtConfig.for_arch(arch, "console=ttyS0 quiet")
print(cache_key(get_distro("debian-13"), arch, pkg, config))
print(sorted(packages.deb_scripts("{KVER}").items()))
print(packages.rpm_spec("{KVER}", "6.12.43-1", "x86_64", ("systemd", "dracut")))
print(sbat_text("{KVER}"))
"""
    assert_same_across_processes(code)


def _newc(name: str, data: bytes) -> bytes:
    fields = [1, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    header = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    out = header + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)


def test_cpio_names_lists_members_and_modules() -> None:
    archive = _newc("usr/lib/modules/k/virtio_blk.ko.xz", b"x" * 5) + _newc("init", b"#!")
    archive += _newc("TRAILER!!!", b"") + b"\0" * 8 + _newc("etc/os-release", b"ID=x\n")
    names = initrd.cpio_names(archive)
    assert names == ["usr/lib/modules/k/virtio_blk.ko.xz", "init", "etc/os-release"]
    with pytest.raises(ValueError):
        initrd.cpio_names(b"garbage" * 20)


def _tree_with_placed(tmp_path: Path, esp: str = "efi") -> Path:
    root = tmp_path / "root"
    (root / "usr/lib/modules" / KVER).mkdir(parents=True)
    (root / esp / "EFI/Linux").mkdir(parents=True)
    (root / esp / f"EFI/Linux/debian-{KVER}.efi").write_bytes(b"MZuki")
    (root / "var/lib/uki-virt").mkdir(parents=True)
    (root / f"var/lib/uki-virt/{KVER}").write_text(f"/{esp}/EFI/Linux/debian-{KVER}.efi\n")
    return root


def test_take_placed_uki_moves_it_out_of_the_tree(tmp_path: Path) -> None:
    root = _tree_with_placed(tmp_path)
    placed = take_placed_uki(root, tmp_path / "out")
    assert placed.rel == f"EFI/Linux/debian-{KVER}.efi" and placed.kernel_version == KVER
    assert placed.path.read_bytes() == b"MZuki"
    assert (root / "efi").is_dir() and not (root / "efi/EFI").exists()


def test_take_placed_uki_from_boot_keeps_the_kernel_files(tmp_path: Path) -> None:
    root = _tree_with_placed(tmp_path, "boot")
    (root / f"boot/vmlinuz-{KVER}").write_bytes(b"kernel")
    assert take_placed_uki(root, tmp_path / "out").esp_dir == "boot"
    assert (root / f"boot/vmlinuz-{KVER}").exists() and not (root / "boot/EFI").exists()


def test_take_placed_uki_without_records_finds_a_distribution_uki(tmp_path: Path) -> None:
    root = _tree_with_placed(tmp_path, "boot/efi")
    (root / f"var/lib/uki-virt/{KVER}").unlink()
    assert take_placed_uki(root, tmp_path / "out").esp_dir == "boot/efi"


def test_take_placed_uki_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(PlacedUkiError, match="/var/lib/uki-virt"):
        take_placed_uki(tmp_path / "root", tmp_path / "out")


def test_the_root_tree_installs_all_but_the_uki_virt_the_composer_builds() -> None:
    debian = make_plan(parse('name = "d"\n[[packages]]\nname = "uki-virt"\n'))
    assert "uki-virt" in debian.packages
    assert "uki-virt" not in archive_packages(debian)
    assert set(archive_packages(debian)) == set(debian.packages) - {"uki-virt"}
    assert "linux-image-amd64" in archive_packages(debian)  # what uki-virt depends on
    plain = make_plan(parse('name = "p"\n'))
    assert archive_packages(plain) == list(plain.packages)
    fedora = make_plan(parse('name = "f"\ndistro = "fedora-41"\n'))
    assert "kernel-uki-virt" in archive_packages(fedora)  # the distribution's own


def test_no_local_package_no_install(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    install_from_repos(tmp_path / "missing-root", [tmp_path / "repo"])  # runs nothing
    assert not (tmp_path / "missing-root").exists()


def test_installing_uki_virt_stays_inside_a_tree_whose_links_point_out(tmp_path: Path) -> None:
    """The tree's packages may have made /tmp, /efi or /var/lib/dpkg links to host paths: the
    .debs are staged, and dpkg's backups removed, where the links lead inside the tree (as
    chrooted dpkg sees them), never on the host; a link that leads nowhere in the tree is
    refused."""
    host = tmp_path / "host"
    (host / "dpkg").mkdir(parents=True)
    (host / "dpkg/status-old").write_text("the host's\n")
    root = tmp_path / "root"
    inside = root / "host"  # where ../ links out of the tree lead in it (as in a chroot)
    (inside / "dpkg").mkdir(parents=True)
    (inside / "dpkg/status-old").write_text("the tree's\n")
    (inside / "dpkg/status").write_text("kept\n")
    (root / "var/lib").mkdir(parents=True)
    (root / "tmp").symlink_to("../host")  # on the host: tmp_path/host
    (root / "var/lib/dpkg").symlink_to("../../../host/dpkg")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "uki-virt_1_amd64.deb").write_bytes(b"not a package")
    with pytest.raises(ToolError):  # this tree has no dpkg to chroot into
        install_from_repos(root, [repo])
    assert sorted(p.name for p in host.iterdir()) == ["dpkg"]  # nothing staged on the host
    assert sorted(p.name for p in inside.iterdir()) == ["dpkg"]  # staged inside, removed
    assert (root / "efi").is_dir()
    with Tree(root) as t:
        drop_dpkg_backups(t)
    assert sorted(p.name for p in (inside / "dpkg").iterdir()) == ["status"]
    assert (host / "dpkg/status-old").read_text() == "the host's\n"
    (root / "efi").rmdir()
    (root / "efi").symlink_to("../host/efi")  # to nothing in the tree: refused, not made
    with pytest.raises(InTreeError, match="/efi"):
        install_from_repos(root, [repo])
    assert not (host / "efi").exists()


def test_dnf_conf_reads_only_the_given_repositories(tmp_path: Path) -> None:
    repo = Repository(id="local", baseurls=("file:///srv/repo",), gpgcheck=False)
    conf = dnf_conf([repo], tmp_path)
    assert "reposdir=\n" in conf and "install_weak_deps=0" in conf
    assert "[local]\nname=local\nenabled=1\nbaseurl=file:///srv/repo\ngpgcheck=0\n" in conf
    assert conf.count("[") == 2  # [main] and the one repository


def test_default_repositories_and_rpm_database() -> None:
    fedora = default_repositories(get_distro("fedora-41"))
    assert [r.id for r in fedora] == ["fedora-41-fedora", "fedora-41-updates"]
    assert fedora[0].dnf_options()["gpgcheck"] == "1"
    assert dbpath(get_distro("fedora-41")) == "/usr/lib/sysimage/rpm"
    assert dbpath(get_distro("centos-stream-9")) == "/var/lib/rpm"


def test_repository_needs_a_source() -> None:
    with pytest.raises(ValueError, match="baseurls"):
        Repository(id="x")


def test_fedora_blueprint_takes_repositories_debian_rejects_them() -> None:
    repos = (
        '[[customizations.repositories]]\nid = "r"\nbaseurls = ["http://example.org/r"]\n'
        'gpgkeys = ["https://example.org/r/RPM-GPG-KEY"]\n'
    )
    plan = make_plan(parse(f'name = "f"\ndistro = "fedora-41"\n{repos}'))
    assert plan.customizations.repositories[0].baseurls == ("http://example.org/r",)
    assert "kernel-uki-virt" in plan.packages and "kernel-core" not in plan.packages
    with pytest.raises(BlueprintError) as info:
        make_plan(parse(f'name = "d"\n{repos}'))
    assert info.value.key == "customizations.repositories" and info.value.line == 2


def _payload_tree(base: Path, mtime: int) -> Path:
    import os

    tree = base / "tree"
    (tree / f"usr/lib/modules/{KVER}").mkdir(parents=True)
    (tree / f"usr/lib/modules/{KVER}/vmlinuz-virt.efi").write_bytes(b"MZ" + bytes(range(256)))
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (mtime, mtime))
    return tree


def test_deb_is_reproducible_whatever_the_tree_mtimes(tmp_path: Path) -> None:
    from composer.uki_virt.debpkg import build_deb

    fields = {"Package": "p", "Version": "1:1.0-1", "Architecture": "amd64",
              "Maintainer": "m <m@x.invalid>", "Description": "d\nlong"}  # fmt: skip
    debs = []
    for i, mtime in enumerate((1000, 2_000_000_000)):
        out = tmp_path / f"out{i}"
        out.mkdir()
        tree = _payload_tree(tmp_path / str(i), mtime)
        debs.append(build_deb(tree, fields, packages.deb_scripts(KVER), out, epoch=1_700_000_000))
    assert debs[0].name == "p_1.0-1_amd64.deb"
    assert debs[0].read_bytes() == debs[1].read_bytes()
    members = subprocess.run(["ar", "t", debs[0]], capture_output=True, text=True, check=True)
    assert "data.tar" in members.stdout.split()  # stored: the UKI is compressed already


def test_rpm_is_reproducible_whatever_the_tree_mtimes(tmp_path: Path) -> None:
    from composer.uki_virt.rpmpkg import build_rpm

    spec = packages.rpm_spec(KVER, "6.12.43-1", "x86_64")
    rpms = []
    for i, mtime in enumerate((1000, 2_000_000_000)):
        out = tmp_path / f"out{i}"
        out.mkdir()
        rpms.append(
            build_rpm(_payload_tree(tmp_path / str(i), mtime), spec, out, epoch=1_700_000_000)
        )
    assert rpms[0].name == "kernel-uki-virt-6.12.43-1.dps.x86_64.rpm"
    assert rpms[0].read_bytes() == rpms[1].read_bytes()
    query = ["rpm", "-qp", "--qf", "%{PAYLOADCOMPRESSOR}", str(rpms[0])]
    compressor = subprocess.run(query, capture_output=True, text=True, check=True).stdout
    assert compressor == "zstd"  # fast: the UKI is compressed already


def test_repository_indexes_list_every_package(tmp_path: Path) -> None:
    """The apt index of a local repository (Packages, Release) names the .deb in it and
    Release holds the index's digest; createrepo_c's repodata names the .rpm."""
    from composer.uki_virt.debpkg import build_deb
    from composer.uki_virt.repo import index_apt, index_rpm
    from composer.uki_virt.rpmpkg import build_rpm

    repo = tmp_path / "repo"
    repo.mkdir()
    fields = {"Package": "p", "Version": "1.0-1", "Architecture": "amd64",
              "Maintainer": "m <m@x.invalid>", "Description": "d"}  # fmt: skip
    build_deb(_payload_tree(tmp_path / "d", 1000), fields, {}, repo, epoch=1_700_000_000)
    spec = packages.rpm_spec(KVER, "6.12.43-1", "x86_64")
    build_rpm(_payload_tree(tmp_path / "r", 1000), spec, repo, epoch=1_700_000_000)
    index_apt(repo)
    index_rpm(repo)
    assert "Package: p\n" in (repo / "Packages").read_text()
    assert "Filename: ./p_1.0-1_amd64.deb" in (repo / "Packages").read_text()
    release = (repo / "Release").read_text()
    assert "Origin: dps-composer" in release and " Packages\n" in release
    assert "primary" in (repo / "repodata/repomd.xml").read_text()
