"""`dps-composer kickstart`: rendered from blueprints, parsed by pykickstart with errors fatal,
and no blueprint value can inject a command, a section or shell code."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from composer.core.errors import BlueprintError
from composer.kickstart.render import KickstartError, fixup_script, kickstart_dir, render, validate
from composer.plan import load as bp_mod
from composer.plan.plan import make_plan

ROOT = Path(__file__).resolve().parents[3]
BLUEPRINTS = sorted((ROOT / "blueprints").glob("*.toml"))
BASE = 'name = "ks"\ndistro = "fedora-42"\n'


def parsed(text: str, version: str = "F42") -> KickstartParser:
    parser = KickstartParser(makeVersion(version), errorsAreFatal=True)
    parser.readKickstartFromString(text)
    return parser


def render_text(toml: str, **kw: str) -> str:
    return render(bp_mod.parse(toml, "t.toml"), **kw)


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.name)
def test_every_fedora_blueprint_renders_a_valid_kickstart(path: Path) -> None:
    bp = bp_mod.load(path)
    if not bp.distro.startswith("fedora-"):
        with pytest.raises(KickstartError, match="distro"):
            render(bp)
        return
    text = render(bp, source=path.name)
    handler = parsed(text, f"F{bp.distro.split('-')[1]}").handler
    assert [s.type for s in handler.scripts] == [1]  # one %post (KS_SCRIPT_POST)
    assert "kernel-uki-virt" in handler.packages.packageList
    assert handler.clearpart.disklabel == "gpt"
    mounts = {p.mountpoint for p in handler.partition.partitions}
    assert {"/boot/efi", "/"} <= mounts


@pytest.mark.parametrize("name", ["fedora-uki-sdboot", "fedora-uki-grub2"])
def test_shipped_kickstarts_are_current_and_valid(name: str) -> None:
    shipped = (ROOT / "kickstart" / f"{name}.ks").read_text()
    validate(shipped, "F42")
    assert shipped == render(
        bp_mod.load(ROOT / "blueprints" / f"{name}.toml"), source=f"{name}.toml"
    ), (
        f"kickstart/{name}.ks is stale: dps-composer kickstart blueprints/{name}.toml -o kickstart/{name}.ks"
    )


def test_sdboot_drops_the_grub_pair_and_grub2_keeps_it() -> None:
    sd = parsed((ROOT / "kickstart/fedora-uki-sdboot.ks").read_text()).handler
    grub = parsed((ROOT / "kickstart/fedora-uki-grub2.ks").read_text()).handler
    assert {"grub2-efi-x64", "shim-x64"} <= set(sd.packages.excludedList)
    assert "systemd-boot-unsigned" in sd.packages.packageList
    assert sd.bootloader.location == "none"
    assert {"grub2-efi-x64", "shim-x64"} <= set(grub.packages.packageList)
    assert "grub2-efi-x64" not in grub.packages.excludedList
    assert "chainloader /EFI/Linux/" in grub.scripts[0].script


def test_post_runs_the_embedded_shell_twin() -> None:
    handler = parsed(render_text(BASE + '[boot]\nloader = "uki-direct"\n')).handler
    script = handler.scripts[0].script
    assert fixup_script() in script
    assert "/usr/libexec/dps-composer/fixup --loader uki-direct" in script
    assert handler.scripts[0].errorOnFail
    assert "uki-direct" in handler.packages.packageList


def test_users_keys_services_timezone_come_from_the_blueprint() -> None:
    toml = BASE + (
        '[customizations]\nhostname = "h1"\n[customizations.timezone]\ntimezone = "Europe/Berlin"\n'
        'ntpservers = ["ntp.example.org"]\n[customizations.services]\nenabled = ["sshd", "chronyd"]\n'
        'disabled = ["kdump"]\nmasked = ["debug-shell.service"]\n'
        '[[customizations.group]]\nname = "ops"\ngid = 2000\n'
        '[[customizations.user]]\nname = "ann"\npassword = "$6$salt$abc"\nkey = "ssh-ed25519 AAAA ann@h"\n'
        'groups = ["wheel", "ops"]\nuid = 1500\n[[customizations.sshkey]]\nuser = "root"\nkey = "ssh-rsa BBBB"\n'
    )
    h = parsed(render_text(toml)).handler
    (user,) = h.user.userList
    assert (user.name, user.password, user.isCrypted, user.groups, user.uid) == (
        "ann", "$6$salt$abc", True, ["wheel", "ops"], 1500)  # fmt: skip
    assert [(k.username, k.key) for k in h.sshkey.sshUserList] == [
        ("ann", "ssh-ed25519 AAAA ann@h"), ("root", "ssh-rsa BBBB")]  # fmt: skip
    assert h.services.enabled == ["sshd", "chronyd"] and h.services.disabled == ["kdump"]
    assert h.timezone.timezone == "Europe/Berlin"
    assert [t.ntp_server for t in h.timesource.dataList()] == ["ntp.example.org"]
    assert h.network.hostname == "h1"
    assert "systemctl mask debug-shell.service" in h.scripts[0].script
    assert [(g.name, g.gid) for g in h.group.groupList] == [("ops", 2000)]


HOSTILE = "x'; reboot; echo '$(rm -rf /) `id` \"q\" # %post --nochroot ; \\ $HOME"


def test_hostile_values_round_trip_as_data() -> None:
    data = HOSTILE + "\n%end\n%post\nreboot\n"
    toml = BASE + "[[customizations.user]]\nname = \"ann\"\ndescription = '''" + HOSTILE + "'''\n"
    toml += "[[customizations.files]]\npath = \"/etc/motd\"\ndata = '''" + data + "'''\n"
    toml += "[[customizations.directories]]\npath = '''/srv/x $(reboot) `halt`'''\n"
    text = render_text(toml)
    h = parsed(text).handler
    assert h.user.userList[0].gecos == HOSTILE  # one word for pykickstart, read back exactly
    (post,) = h.scripts  # the data's "%end / %post" did not open a section
    # for the shell, the values are single quoted words, never code
    path = shlex.quote("/srv/x $(reboot) `halt`")
    assert f"mkdir {path} 2>/dev/null || test -d {path}" in post.script
    encoded = next(ln for ln in post.script.splitlines() if ln.endswith("base64 -d >/etc/motd"))
    assert base64.b64decode(shlex.split(encoded)[2]).decode() == data
    assert [ln.strip() for ln in text.splitlines()].count("reboot") == 1  # the template's own


def test_newline_in_a_description_stays_in_the_comment() -> None:
    text = render_text(
        BASE + 'description = "nice\\n%post\\nreboot\\n%end\\nrootpw --plaintext x"\n'
    )
    h = parsed(text).handler
    assert len(h.scripts) == 1 and h.rootpw.lock and not h.rootpw.password
    assert "# nice\\n%post\\nreboot\\n%end\\nrootpw --plaintext x\n" in text


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (
            '[[customizations.user]]\nname = "a"\ndescription = "x\\n%post"\n',
            "customizations.user[0].description",
        ),
        (
            '[[customizations.sshkey]]\nuser = "a"\nkey = "ssh-rsa A\\rreboot"\n',
            "customizations.sshkey[0].key",
        ),
        (
            '[[customizations.sshkey]]\nuser = "a"\nkey = "--username=root"\n',
            "customizations.sshkey[0].key",
        ),
        (
            '[customizations.timezone]\ntimezone = "UTC\\u2028reboot"\n',
            "customizations.timezone.timezone",
        ),
        (
            '[[customizations.user]]\nname = "a"\ngroups = ["wheel\\u2028%post"]\n',
            "customizations.user[0].groups[0]",
        ),
    ],
)
def test_values_a_kickstart_line_cannot_hold_are_rejected_by_key(toml: str, key: str) -> None:
    try:
        bp = bp_mod.parse(BASE + toml, "t.toml")
    except BlueprintError:
        return  # the blueprint loader already refuses it: equally safe
    # refused by key: as a value no kickstart line can hold, or as no valid value at all
    pattern = key.replace("[", r"\[").replace("]", r"\]")
    with pytest.raises((KickstartError, BlueprintError), match=pattern):
        render(bp)


def test_validate_rejects_what_pykickstart_rejects() -> None:
    with pytest.raises(KickstartError, match="F42"):
        validate("bogus-command --x\n", "F42")
    with pytest.raises(KickstartError, match="F42"):
        validate("%post\necho unterminated\n", "F42")
    with pytest.raises(KickstartError, match="no handler"):
        validate("text\n", "F999")


def test_unknown_fedora_release_is_an_error_naming_distro() -> None:
    with pytest.raises(KickstartError, match="distro"):
        render_text('name = "ks"\ndistro = "fedora-999"\n')


def test_plan_takes_fedora_through_the_dnf_backend() -> None:
    plan = make_plan(bp_mod.load(ROOT / "blueprints/fedora-uki-sdboot.toml"), "f.toml")
    assert plan.distribution.family == "dnf" and "kernel-uki-virt" in plan.packages


def test_plan_rejects_an_unknown_fedora_release_naming_distro() -> None:
    bp = bp_mod.parse('name = "x"\ndistro = "fedora-99"\n')
    with pytest.raises(BlueprintError) as info:
        make_plan(bp, "f.toml")
    assert (
        info.value.key == "distro"
        and "dnf" in info.value.message
        and "kickstart" in info.value.message
    )


def test_templates_are_found_beside_the_package() -> None:
    assert (kickstart_dir() / "post" / "dps-fixup.sh").is_file()
    assert (
        ROOT / "composer" / "data" / "kickstart" / "fedora-uki.ks.j2"
    ).is_file()  # packaged copy


def test_uki_repo_adds_a_repo_line() -> None:
    h = parsed(render_text(BASE, uki_repo="https://example.org/uki-virt/")).handler
    assert [(r.name, r.baseurl) for r in h.repo.repoList if r.name == "uki-virt"] == [
        ("uki-virt", "https://example.org/uki-virt/")]  # fmt: skip
