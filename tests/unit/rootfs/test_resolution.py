"""The post-resolution check's pure parts: apt's simulated install, what a package's files
and maintainer scripts make, and the judgement of services, users and groups against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.plan.load import parse
from composer.plan.plan import make_plan
from composer.rootfs.customize import real_unit
from composer.rootfs.intree import Tree
from composer.rootfs.pkgfacts import (
    FACTS_VERSION,
    script_accounts,
    sysusers,
    unit_aliases,
    unit_file,
    unit_name,
)
from composer.rootfs.pkgset import deb_file_name, parse_simulation
from composer.rootfs.resolution import (
    Resolved,
    _account_problems,
    _apt_problems,
    _service_problems,
    blueprint_units,
    shipped,
)
from composer.rootfs.versions import match_pins

SIMULATION = """\
NOTE: This is only a simulation!
Inst gcc-14-base (14.2.0-19 Debian:13.8/stable [amd64])
Inst libgcc-s1 (14.2.0-19 Debian:13.8/stable [amd64]) []
Inst tzdata (2026f-0+deb13u1 Debian:13.8/stable [all])
Inst openssh-server (1:10.0p1-7+deb13u4 Debian:13.8/stable [amd64])
Conf gcc-14-base (14.2.0-19 Debian:13.8/stable [amd64])
"""


def test_simulation_lists_what_apt_would_install() -> None:
    got = parse_simulation(SIMULATION)
    assert [(p.name, p.version, p.arch) for p in got] == [
        ("gcc-14-base", "14.2.0-19", "amd64"), ("libgcc-s1", "14.2.0-19", "amd64"),
        ("tzdata", "2026f-0+deb13u1", "all"), ("openssh-server", "1:10.0p1-7+deb13u4", "amd64"),
    ]  # fmt: skip
    assert got[3].file_name == deb_file_name("openssh-server", "1:10.0p1-7+deb13u4", "amd64")
    assert got[3].file_name == "openssh-server_1%3a10.0p1-7+deb13u4_amd64.deb"


def test_unit_files_and_aliases() -> None:
    assert unit_file("./usr/lib/systemd/system/ssh.service") == "ssh.service"
    assert unit_file("./usr/lib/systemd/system/multi-user.target.wants/x.service") is None
    assert unit_file("./usr/share/doc/x.service") is None
    text = "[Unit]\nAlias=no.service\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service a.service\n"
    assert unit_aliases(text) == ["sshd.service", "a.service"]


def test_sysusers_and_maintainer_scripts() -> None:
    assert sysusers("u sshd -:nogroup \"sshd user\" /run/sshd\ng _ssh -\nm x y\n# u no\n") == (
        {"sshd"}, {"_ssh"})  # fmt: skip
    assert sysusers('u! messagebus - "System Message Bus"\n') == ({"messagebus"}, {"messagebus"})
    script = (
        "if ! getent passwd _apt; then\n\tadduser --force-badname --system --home /nonexistent  \\\n"
        "\t    --no-create-home --quiet _apt || true\nfi\n"
        "addgroup --system tss\nadduser --system --ingroup tss --shell /bin/false tss 2>/dev/null\n"
        'adduser "$USER" plugdev\nadduser bob staff\nuseradd -r -d /var/lib/y yuser # comment\n'
    )
    assert script_accounts(script) == ({"_apt", "tss", "yuser"}, {"tss", "yuser"})


def test_unit_names_templates_and_blueprint_units() -> None:
    assert unit_name("sshd") == "sshd.service" and unit_name("cockpit.socket") == "cockpit.socket"
    assert shipped("getty@tty1.service", {"getty@.service"})
    assert not shipped("getty@tty1.service", {"getty.service"})
    bp = parse('name = "x"\n[[customizations.files]]\npath = "/etc/systemd/system/custom.service"\n'
               'data = "[Install]\\nAlias=c.service\\n"\n')  # fmt: skip
    assert blueprint_units(bp.customizations) == {"custom.service", "c.service"}


FOUND = Resolved(packages=150, units=frozenset({"ssh.service", "sshd.service", "getty@.service"}),
                 users=frozenset({"postfix"}), groups=frozenset({"docker"}),
                 programs=frozenset({"/usr/sbin/sshd"}))  # fmt: skip


def test_services_the_image_does_not_ship_are_problems_at_their_keys() -> None:
    bp = parse(
        'name = "x"\n[customizations.services]\nenabled = ["sshd", "httpd", "custom", "getty@tty1"]\n'
        'disabled = ["cockpit.socket"]\nmasked = ["anything-at-all"]\n'
        '[[customizations.files]]\npath = "/etc/systemd/system/custom.service"\ndata = ""\n'
    )
    problems = {p.key: p.message for p in _service_problems(bp.customizations, FOUND)}
    assert set(problems) == {"customizations.services.enabled[1]",
                             "customizations.services.disabled[0]"}  # fmt: skip
    assert "apache2.service" in problems["customizations.services.enabled[1]"]
    assert "150 resolved" in problems["customizations.services.disabled[0]"]


def test_users_and_groups_from_packages() -> None:
    plan = make_plan(parse(
        'name = "x"\n[[customizations.user]]\nname = "ann"\ngroups = ["docker", "libvirt"]\n'
        '[[customizations.sshkey]]\nuser = "postfix"\nkey = "k"\n'
        '[[customizations.files]]\npath = "/etc/x"\nuser = "nobody-here"\n'
    ))  # fmt: skip
    problems = {p.key: p.message for p in _account_problems(plan, FOUND)}
    assert set(problems) == {"customizations.user[0].groups[1]", "customizations.files[0].user"}
    assert "[[customizations.group]]" in problems["customizations.user[0].groups[1]"]


def test_apt_refusals_name_the_packages_key_and_pins_theirs() -> None:
    plan = make_plan(
        parse('name = "x"\n[[packages]]\nname = "vim"\n[[packages]]\nname = "nosuch"\n')
    )
    got = _apt_problems(plan, "Unable to locate package nosuch; Some other trouble")
    assert [p.key for p in got] == ["packages[1]", "packages"]
    pins, problems = match_pins(
        [("tmux", "2.9a"), ("vim", "2:9.*")], {"tmux": ["3.5a-3"], "vim": ["2:9.1.1230-2"]},
        "trixie", {"tmux": "packages[0]"},
    )  # fmt: skip
    assert pins == {"vim": "2:9.1.1230-2"}
    assert [(p.key, p.message) for p in problems] == [
        ("packages[0].version", "tmux: no version matches '2.9a'; trixie has 3.5a-3")
    ]


def test_an_alias_is_enabled_by_its_unit_file(tmp_path: Path) -> None:
    """Debian's ssh.service is also sshd.service; systemctl refuses to enable the alias."""
    units = tmp_path / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "ssh.service").write_text(
        "[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n"
    )
    (units / "getty@.service").write_text("[Install]\nWantedBy=getty.target\n")

    def real(name: str) -> str:
        with Tree(tmp_path) as t:
            return real_unit(t, name)

    assert real("sshd") == "ssh.service"  # by Alias=, nothing enabled yet
    etc = tmp_path / "etc/systemd/system"
    etc.mkdir(parents=True)
    (etc / "sshd.service").symlink_to("/usr/lib/systemd/system/ssh.service")
    assert real("sshd.service") == "ssh.service"  # the postinst's alias link
    (etc / "custom.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert real("custom") == "custom.service"
    assert real("nothing.socket") == "nothing.socket"


def test_a_resolved_set_is_remembered_per_root_key(tmp_path: Path) -> None:
    """No apt run when the root tree's key was resolved before: the package files' facts
    (remembered too) decide, here that httpd is not shipped."""
    import json

    from composer.core.errors import KeyedProblems
    from composer.rootfs.resolution import check

    packages = [("systemd", "257.13-1", "amd64"), ("openssh-server", "1:10.0p1-7", "amd64")]
    (tmp_path / "resolutions").mkdir()
    (tmp_path / "resolutions" / "k1.json").write_text(json.dumps(packages))
    archives = tmp_path / "archives" / "trixie-amd64"
    archives.mkdir(parents=True)
    (tmp_path / "package-facts").mkdir()
    units = {
        "systemd": ["systemd-journald.service"],
        "openssh-server": ["ssh.service", "sshd.service"],
    }
    for name, version, arch in packages:
        deb = deb_file_name(name, version, arch)
        (archives / deb).write_bytes(b"")
        (tmp_path / "package-facts" / f"{deb}.v{FACTS_VERSION}.json").write_text(
            json.dumps({"units": units[name], "users": [], "groups": [], "files": []})
        )
    plan = make_plan(parse('name = "x"\n[customizations.services]\nenabled = ["sshd", "httpd"]\n'))
    with pytest.raises(KeyedProblems) as info:
        check(plan, {}, cache=tmp_path, key="k1")
    assert [p.key for p in info.value.problems] == ["customizations.services.enabled[1]"]
    assert "(2 resolved)" in info.value.problems[0].message
