"""Plan-time judgement: what a blueprint decides, against the target's own data (users,
groups, time zones, locales, name rules, sizes, labels), with osbuild's semantics; every
problem named with its line, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.plan.load import load, parse
from composer.plan.plan import Plan, make_plan
from composer.target.accounts import GroupRule
from composer.target.facts import load as target_data
from composer.target.facts import normal_locale, supported_locale

ROOT = Path(__file__).resolve().parents[3]


def plan(text: str) -> Plan:
    return make_plan(parse(f'name = "x"\n{text}\n', "bp.toml"))


def refused(text: str) -> BlueprintError:
    with pytest.raises(BlueprintError) as info:
        plan(text)
    return info.value


def keys(e: BlueprintError) -> dict[str, str]:
    return {p.key: p.message for p in e.problems}


def test_empty_distro_is_the_default_distribution() -> None:
    assert plan('distro = ""').distro == "debian-13"


def test_root_is_changed_not_added_and_keeps_uid_0() -> None:
    p = plan('[[customizations.user]]\nname = "root"\npassword = "x"\nkey = "ssh-ed25519 A r"')
    assert any("user root: already in the base system; set with usermod" in n for n in p.notes)
    e = refused('[[customizations.user]]\nname = "root"\nuid = 1000')
    assert e.key == "customizations.user[0].uid" and "cannot be changed" in e.message
    assert e.line == 4


def test_fedora_group_names_are_mapped_or_created_on_debian() -> None:
    p = plan('[[customizations.user]]\nname = "ann"\ngroups = ["wheel", "lock", "docker"]')
    assert "user ann: group wheel is sudo on debian-13 (its administrator group)" in p.notes
    assert any("group lock (fedora's) is created as a system group" in n for n in p.notes)
    assert any("groups[2]: group docker is not in debian-13's base system" in n for n in p.notes)


def test_debian_group_names_on_fedora() -> None:
    p = plan(
        'distro = "fedora-42"\n[[customizations.user]]\nname = "ann"\ngroups = ["sudo", "plugdev"]'
    )
    assert "user ann: group sudo is wheel on fedora-42 (its administrator group)" in p.notes
    assert any("group plugdev (debian-13's) is created" in n for n in p.notes)


def test_group_rule() -> None:
    rule = GroupRule("apt", target_data("fedora").groups)
    have = target_data("debian-13").groups
    assert rule.resolve("wheel", have) == ("map", "sudo")
    assert rule.resolve("mem", have) == ("create", "mem")
    assert rule.resolve("sudo", have) == ("have", "sudo")
    assert rule.resolve("docker", have) == ("missing", "docker")
    assert rule.resolve("wheel", have | {"wheel"}) == ("have", "wheel")  # declared: kept


def test_duplicates_are_refused_each_at_its_own_key() -> None:
    e = refused(
        '[[customizations.group]]\nname = "ops"\ngid = 2000\n'
        '[[customizations.group]]\nname = "ops"\ngid = 2000\n'
        '[[customizations.user]]\nname = "a"\n[[customizations.user]]\nname = "a"'
    )
    assert set(keys(e)) == {"customizations.group[1].name", "customizations.group[1].gid",
                            "customizations.user[1].name"}  # fmt: skip
    lines = str(e).splitlines()
    assert len(lines) == 3 and all(ln.startswith("bp.toml:") for ln in lines)
    assert "'ops' is already given at customizations.group[0]" in str(e)


def test_time_zones_against_the_target_and_the_legacy_package() -> None:
    p = plan('[customizations.timezone]\ntimezone = "US/Eastern"')
    assert {"tzdata", "tzdata-legacy"} <= set(p.packages)
    assert dict(p.package_origins)["tzdata-legacy"] == "customizations.timezone.timezone"
    assert "tzdata-legacy" not in plan('[customizations.timezone]\ntimezone = "UTC"').packages
    e = refused('[customizations.timezone]\ntimezone = "europe/berlin"')
    assert e.key == "customizations.timezone.timezone" and "Europe/Berlin" in e.message
    fedora = plan('distro = "fedora-42"\n[customizations.timezone]\ntimezone = "US/Eastern"')
    assert "tzdata-legacy" not in fedora.packages and "tzdata" in fedora.packages


def test_locales_against_glibc_and_the_targets_packages() -> None:
    assert supported_locale(target_data("debian-13"), "en_US.utf8")
    assert normal_locale("de_DE.utf8@euro") == "de_DE.UTF-8@euro"
    e = refused('[customizations.locale]\nlanguages = ["en_US.UTF-8", "xx_YY.UTF-8", "C.UTF-8"]')
    assert set(keys(e)) == {"customizations.locale.languages[1]"}
    deb = plan('[customizations.locale]\nlanguages = ["de_DE.UTF-8"]')
    fed = plan(
        'distro = "fedora-42"\n[customizations.locale]\nlanguages = ["de_DE.UTF-8", "sr_RS@latin"]'
    )
    assert "locales" in deb.packages and "locales" not in fed.packages
    assert {"glibc-langpack-de", "glibc-langpack-sr"} <= set(fed.packages)


def test_package_names_follow_the_targets_rules() -> None:
    assert (
        "NetworkManager"
        in plan('distro = "fedora-42"\n[[packages]]\nname = "NetworkManager"').packages
    )
    e = refused('[[packages]]\nname = "NetworkManager"')
    assert e.key == "packages[0].name" and "lower-case" in e.message
    assert "@core" in plan('distro = "fedora-42"\n[[groups]]\nname = "core"').packages


def test_kernel_append_control_characters_are_refused() -> None:
    with pytest.raises(BlueprintError) as info:
        parse('name = "x"\n[customizations.kernel]\nappend = "quiet\\tsplash"\n', "bp.toml")
    assert info.value.key == "customizations.kernel.append" and "control" in info.value.message


@pytest.mark.parametrize(
    ("fs", "label", "ok"),
    [("ext4", "a" * 16, True), ("ext4", "a" * 17, False), ("ext4", "ü" * 9, False),
     ("xfs", "a" * 12, True), ("xfs", "a" * 13, False), ("btrfs", "a" * 255, True),
     ("vfat", "DATA", True), ("vfat", "A" * 12, False), ("vfat", "A.B", False)],
)  # fmt: skip
def test_labels_fit_their_file_system(fs: str, label: str, ok: bool) -> None:
    text = (f'[[customizations.disk.partitions]]\nmountpoint = "/data"\nfs_type = "{fs}"\n'
            f'minsize = "1 GiB"\nlabel = "{label}"')  # fmt: skip
    if ok:
        plan(text)
    else:
        assert refused(text).key == "customizations.disk.partitions[0].label"


def test_label_with_a_newline_is_refused() -> None:
    e = refused('[[customizations.disk.partitions]]\nmountpoint = "/data"\nlabel = "a\\nb"')
    assert e.key == "customizations.disk.partitions[0].label" and "line breaks" in e.message


@pytest.mark.parametrize(
    ("text", "key"),
    [('[image]\nsize = 9223372036854775808', "image.size"),
     ('[image]\nsize = "8 EiB"', "image.size"),
     ('[[customizations.disk.partitions]]\nmountpoint = "/data"\nfs_type = "vfat"\nminsize = "3 TiB"',
      "customizations.disk.partitions[0].minsize"),
     ('[image]\nsize = "3 TiB"\nformats = ["vhd"]', "image.formats"),
     ('[image]\nsize = "2 GiB"\n[[customizations.disk.partitions]]\nmountpoint = "/data"\nminsize = "4 GiB"',
      "image.size")],
)  # fmt: skip
def test_sizes_within_the_disk_the_file_system_and_the_format(text: str, key: str) -> None:
    assert key in keys(refused(text))


def test_disk_grows_to_fit_when_no_size_is_given() -> None:
    p = plan('[[customizations.disk.partitions]]\nmountpoint = "/data"\nminsize = "4 GiB"')
    assert p.disk_size > 4 * 1024**3


def test_two_partitions_with_one_uuid_are_refused() -> None:
    u = "6b1d5d2e-7c55-4c3f-9d1e-0a1b2c3d4e5f"
    e = refused(f'[[customizations.disk.partitions]]\nmountpoint = "/a"\npart_uuid = "{u}"\n'
                f'[[customizations.disk.partitions]]\nmountpoint = "/b"\npart_uuid = "{u}"')  # fmt: skip
    assert e.key == "customizations.disk.partitions[1].part_uuid" and e.line == 7


def test_a_second_swap_is_enabled_by_fstab_and_var_lib_mounts_are_valid() -> None:
    p = plan('[[customizations.disk.partitions]]\nfs_type = "swap"\nminsize = "256 MiB"\n'
             '[[customizations.disk.partitions]]\nfs_type = "swap"\nminsize = "256 MiB"\n'
             '[[customizations.disk.partitions]]\nmountpoint = "/var/lib/mysql"\nminsize = "1 GiB"')  # fmt: skip
    swaps = [x for x in p.partitions if x.designator == "swap"]
    # with several swap partitions, systemd's gpt-auto generator enables none: fstab, each
    assert [s.fstab for s in swaps] == [True, True] and swaps[0].fs_uuid != swaps[1].fs_uuid
    assert all(f"PARTUUID={s.uuid}\tnone\tswap\tdefaults\t0\t0" in p.fstab for s in swaps)
    one = plan('[[customizations.disk.partitions]]\nfs_type = "swap"\nminsize = "256 MiB"')
    assert not one.partition("swap").fstab and one.fstab == ()
    assert any(x.mountpoint == "/var/lib/mysql" and x.fstab for x in p.partitions)
    e = refused('[[customizations.disk.partitions]]\nmountpoint = "/var/run"')
    assert e.key == "customizations.disk.partitions[0].mountpoint"


def test_a_uri_is_read_when_the_blueprint_is_loaded(tmp_path: Path) -> None:
    src = tmp_path / "motd"
    src.write_text("hello\n")
    bp_file = tmp_path / "bp.toml"
    bp_file.write_text(
        f'name = "x"\n[[customizations.files]]\npath = "/etc/motd"\nuri = "file://{src}"\n'
    )
    assert make_plan(load(bp_file)).customizations.files[0].data == "hello\n"
    src.unlink()
    with pytest.raises(BlueprintError) as info:
        load(bp_file)
    assert info.value.key == "customizations.files[0].uri" and info.value.line == 4


def test_a_uri_outside_the_blueprints_directory_is_refused(tmp_path: Path) -> None:
    bp_file = tmp_path / "bp.toml"
    for uri in ("file:///etc/os-release", "file:link"):
        (tmp_path / "link").unlink(missing_ok=True)
        (tmp_path / "link").symlink_to("/etc/os-release")
        bp_file.write_text(
            f'name = "x"\n[[customizations.files]]\npath = "/etc/motd"\nuri = "{uri}"\n'
        )
        with pytest.raises(BlueprintError, match="outside the blueprint's directory"):
            load(bp_file)


def test_every_problem_has_its_own_reason() -> None:
    with pytest.raises(BlueprintError) as info:
        parse('name = "x"\n[customizations]\nhostname = 1\n[[customizations.user]]\nname = "Bad Name"\n'
              'uid = -4\n', "bp.toml")  # fmt: skip
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("bp.toml:3: customizations.hostname: ")
    assert lines[1].startswith("bp.toml:5: customizations.user[0].name: 'Bad Name' is not")
    assert lines[2].startswith("bp.toml:6: customizations.user[0].uid: -4 is not a valid")


def test_target_data_is_what_the_regenerator_writes() -> None:
    deb, fed = target_data("debian-13"), target_data("fedora")
    assert {"root", "_apt", "messagebus", "tss"} <= deb.users
    assert {"sudo", "systemd-journal", "kvm"} <= deb.groups and "wheel" not in deb.groups
    assert {"wheel", "lock", "systemd-journal"} <= fed.groups and "sudo" not in fed.groups
    assert deb.zones["Europe/Berlin"] == "tzdata" and deb.zones["US/Eastern"] == "tzdata-legacy"
    assert fed.zones["US/Eastern"] == "tzdata" and "en_US.UTF-8" in deb.locales


def test_osbuild_example_plans_with_its_notes() -> None:
    p = make_plan(load(ROOT / "blueprints/osbuild-example.toml"))
    assert dict(p.package_origins)["tmux"] == "packages[0]" and p.package_key("udev") == "packages"


def test_filesystem_size_is_osbuilds_old_spelling_of_minsize() -> None:
    p = plan('[[customizations.filesystem]]\nmountpoint = "/data"\nsize = "1 GiB"')
    assert next(x for x in p.partitions if x.mountpoint == "/data").size == 1024**3
