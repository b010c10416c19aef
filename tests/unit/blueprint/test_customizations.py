"""Every osbuild blueprint key is recognised: honoured, or rejected naming the key and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.plan.load import load, parse
from composer.plan.plan import make_plan

ROOT = Path(__file__).resolve().parents[3]

# (TOML fragment, key path the error names, a word the reason contains)
REJECTED = [
    ('[[groups]]\nname = "core"', "groups", "task-"),
    ('[[enabled_modules]]\nname = "nodejs"\nstream = "20"', "enabled_modules", "dnf"),
    ('[[containers]]\nsource = "quay.io/fedora/fedora:latest"', "containers", "container"),
    ("[customizations]\nfips = true", "customizations.fips", "FIPS"),
    (
        '[customizations]\ninstallation_device = "/dev/sda"',
        "customizations.installation_device",
        "installer",
    ),
    ('[customizations]\npartitioning_mode = "lvm"', "customizations.partitioning_mode", "LVM"),
    ('[customizations.firewall]\nports = ["22:tcp"]', "customizations.firewall", "firewalld"),
    ('[customizations.openscap]\nprofile_id = "cis"', "customizations.openscap", "OpenSCAP"),
    ('[customizations.fdo]\nmanufacturing_server_url = "http://x"', "customizations.fdo", "FIDO"),
    (
        '[customizations.ignition.firstboot]\nurl = "http://x"',
        "customizations.ignition",
        "Ignition",
    ),
    (
        '[[customizations.repositories]]\nid = "x"\nbaseurls = ["http://x"]\ngpgcheck = false',
        "customizations.repositories",
        "apt",
    ),
    ("[customizations.installer]\nunattended = true", "customizations.installer", "installer"),
    ('[customizations.rpm.import_keys]\nfiles = ["/k"]', "customizations.rpm", "RPM"),
    (
        "[customizations.rhsm.config.dnf_plugins.product_id]\nenabled = true",
        "customizations.rhsm",
        "Subscription",
    ),
    (
        '[customizations.containers-storage]\ndestination-path = "/x"',
        "customizations.containers-storage",
        "container",
    ),
    ("[customizations.dnf.config]\nset_releasever = true", "customizations.dnf", "dnf"),
    ('[customizations.iso]\nvolume_id = "X"', "customizations.iso", "ISO"),
    ('[[customizations.firstboot.scripts]]\nname = "x"', "customizations.firstboot", "first-boot"),
    ('[customizations.kernel]\nname = "kernel-debug"', "customizations.kernel.name", "linux-image"),
    ('[[packages]]\nname = "vim"\nversion = "9.1 beta"', "packages[0].version", "glob"),
]


@pytest.mark.parametrize(("fragment", "key", "word"), REJECTED)
def test_unsupported_keys_are_errors_with_reasons(fragment: str, key: str, word: str) -> None:
    text = f'name = "x"\n{fragment}\n'
    with pytest.raises(BlueprintError) as info:
        make_plan(parse(text, "osb.toml"))
    e = info.value
    assert e.key == key, e
    assert e.line is not None and e.line >= 2
    assert word.lower() in e.message.lower(), e.message


def test_empty_or_neutral_values_of_unsupported_keys_pass() -> None:
    bp = parse(
        'name = "x"\nmodules = []\ngroups = []\ncontainers = []\nminimal = true\n'
        '[customizations]\nfips = false\npartitioning_mode = "raw"\n'
    )
    assert bp.minimal and bp.customizations.fips is False


def test_honoured_keys_reach_the_plan() -> None:
    bp = load(ROOT / "blueprints/osbuild-example.toml")
    plan = make_plan(bp)
    c = plan.customizations
    assert ("tmux", "3.*") in plan.package_pins
    assert {"tzdata", "systemd-timesyncd", "locales"} <= set(plan.packages)
    assert c.user[0].plain_password and "hashed at build" in plan.to_json()
    assert c.user[0].expire_date and c.user[0].force_password_reset
    assert c.files and c.directories and c.locale.keyboard == "us"
    assert [p.designator for p in plan.partitions] == ["esp", "root"]


def test_modules_are_packages_and_kernel_name_replaces_the_kernel() -> None:
    bp = parse(
        'name = "x"\n[[modules]]\nname = "htop"\n[customizations.kernel]\n'
        'name = "linux-image-cloud-amd64"\n'
    )
    plan = make_plan(bp)
    assert "htop" in plan.packages
    assert "linux-image-cloud-amd64" in plan.packages and "linux-image-amd64" not in plan.packages
    assert make_plan(parse('name = "x"\n[customizations.kernel]\nname = "kernel"\n')).packages


def test_files_directories_and_owners_validated() -> None:
    def err(fragment: str) -> BlueprintError:
        with pytest.raises(BlueprintError) as info:
            parse(f'name = "x"\n{fragment}\n', "f.toml")
        return info.value

    assert err('[[customizations.files]]\npath = "etc/x"').key == "customizations.files[0].path"
    assert "fstab" in err('[[customizations.files]]\npath = "/etc/fstab"').message
    assert err('[[customizations.files]]\npath = "/x"\nmode = "999"').key.endswith("mode")
    assert err('[[customizations.directories]]\npath = "/x"\nuser = 1.5').key.endswith("user")
    ok = parse('name = "x"\n[[customizations.files]]\npath = "/x"\nuser = 0\ngroup = "adm"\n')
    assert ok.customizations.files[0].user == 0
    assert err('[customizations.locale]\nlanguages = ["en US"]').key.endswith("languages")
