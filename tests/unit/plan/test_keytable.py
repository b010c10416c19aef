"""Every blueprint key, every target: a kickstart renders its value (found in what pykickstart
parses, or in the %post it runs) or refuses it by name; an image build refuses by name what
the key table says it refuses; the key table of docs/blueprint.md is the code's."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from composer.core.errors import BlueprintError
from composer.kickstart.render import render
from composer.plan import keytable
from composer.plan.load import parse
from composer.plan.plan import make_plan

ROOT = Path(__file__).resolve().parents[3]
BASE = 'name = "ks"\ndistro = "fedora-42"\n'
MID = "5f3c0de1a2b94c7e8d6f1a2b3c4d5e6f"
PEM = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUabc\n-----END CERTIFICATE-----\n"
Probe = Callable[[Any, str, str], bool]  # (handler, %post script, whole text) -> present


def _user(**kw: str) -> str:
    return '[[customizations.user]]\nname = "ann"\n' + "".join(
        f"{k} = {v}\n" for k, v in kw.items()
    )


def _parts(h: Any) -> dict[str, Any]:
    return {p.mountpoint: p for p in h.partition.partitions}


# key -> (TOML fragment, probe); a probe of None: the kickstart refuses the key
SAMPLES: dict[str, tuple[str, Probe | None]] = {
    "name, description, version": ('description = "Web tier"\nversion = "2.1.0"',
                                   lambda h, p, t: "# ks 2.1.0" in t and "# Web tier" in t),
    "distro": ("", lambda h, p, t: "pykickstart for F42" in t),
    "architecture": ('architecture = "aarch64"', lambda h, p, t: "arch=aarch64" in h.url.mirrorlist),
    "packages[].name": ('[[packages]]\nname = "NetworkManager"',
                        lambda h, p, t: "NetworkManager" in h.packages.packageList),
    "packages[].version": ('[[packages]]\nname = "tmux"\nversion = "3.*"',
                           lambda h, p, t: "tmux-3.*" in h.packages.packageList),
    "modules[]": ('[[modules]]\nname = "htop"\nversion = "3.3.0"',
                  lambda h, p, t: "htop-3.3.0" in h.packages.packageList),
    "enabled_modules[]": ('[[enabled_modules]]\nname = "nodejs"\nstream = "20"', None),
    "groups[]": ('[[groups]]\nname = "container-management"',
                 lambda h, p, t: "container-management" in [g.name for g in h.packages.groupList]),
    "containers[]": ('[[containers]]\nsource = "quay.io/fedora/fedora:latest"', None),
    "minimal": ("minimal = true", lambda h, p, t: h.packages.excludeWeakdeps),
    "customizations.hostname": ('[customizations]\nhostname = "web1"',
                                lambda h, p, t: h.network.hostname == "web1"),
    "customizations.kernel.name": ('[customizations.kernel]\nname = "kernel-debug"', None),
    "customizations.kernel.append": ('[customizations.kernel]\nappend = "debug"', None),
    "customizations.sshkey[]": ('[[customizations.sshkey]]\nuser = "root"\nkey = "ssh-ed25519 AAAA r@h"',
                                lambda h, p, t: ("root", "ssh-ed25519 AAAA r@h") in
                                [(k.username, k.key) for k in h.sshkey.sshUserList]),
    "customizations.user[].name": (_user() + '[[customizations.user]]\nname = "root"\npassword = "$6$s$h"',
                                   lambda h, p, t: [u.name for u in h.user.userList] == ["ann"]
                                   and h.rootpw.password == "$6$s$h" and h.rootpw.isCrypted),
    "customizations.user[].password": (_user(password='"plain words"'),
                                       lambda h, p, t: h.user.userList[0].password == "plain words"
                                       and not h.user.userList[0].isCrypted),
    "customizations.user[].key": (_user(key='"ssh-rsa BBBB ann@h"'), lambda h, p, t: (
        "ann", "ssh-rsa BBBB ann@h") in [(k.username, k.key) for k in h.sshkey.sshUserList]),
    "customizations.user[].description": (_user(description='"Ann A."'),
                                          lambda h, p, t: h.user.userList[0].gecos == "Ann A."),
    "customizations.user[].home": (_user(home='"/srv/ann"'),
                                   lambda h, p, t: h.user.userList[0].homedir == "/srv/ann"),
    "customizations.user[].shell": (_user(shell='"/bin/zsh"'),
                                    lambda h, p, t: h.user.userList[0].shell == "/bin/zsh"),
    "customizations.user[].groups": (_user(groups='["sudo", "plugdev", "docker"]'), lambda h, p, t:
                                     h.user.userList[0].groups == ["wheel", "plugdev", "docker"]
                                     and "plugdev" in [g.name for g in h.group.groupList]),
    "customizations.user[].generate_password": (_user(generate_password="true"), None),
    "customizations.user[].uid": (_user(uid="1500"), lambda h, p, t: h.user.userList[0].uid == 1500),
    "customizations.user[].gid": (_user(gid="1501"), lambda h, p, t: h.user.userList[0].gid == 1501),
    "customizations.user[].expiredate": (_user(expiredate="24000"),
                                         lambda h, p, t: "chage -E 2035-09-17 ann" in p),
    "customizations.user[].force_password_reset": (_user(force_password_reset="true"),
                                                   lambda h, p, t: "chage -d 0 ann" in p),
    "customizations.group[]": ('[[customizations.group]]\nname = "ops"\ngid = 2000\n'
                               '[[customizations.group]]\nname = "wheel"\ngid = 4242',
                               lambda h, p, t: [(g.name, g.gid) for g in h.group.groupList]
                               == [("ops", 2000)] and "group wheel: fedora-42 already has it" in t),
    "customizations.timezone.timezone": ('[customizations.timezone]\ntimezone = "US/Eastern"',
                                         lambda h, p, t: h.timezone.timezone == "US/Eastern"),
    "customizations.timezone.ntpservers": ('[customizations.timezone]\nntpservers = ["ntp.example.org"]',
                                           lambda h, p, t: [s.ntp_server for s in
                                           h.timesource.dataList()] == ["ntp.example.org"]),
    "customizations.locale.languages": ('[customizations.locale]\nlanguages = ["de_DE.UTF-8", "fr_FR.UTF-8", "el_CY.UTF-8"]',
                                        lambda h, p, t: h.lang.lang == "de_DE.UTF-8" and
                                        h.lang.addsupport == ["fr_FR.UTF-8", "el_CY.UTF-8"]),
    "customizations.locale.keyboard": ('[customizations.locale]\nkeyboard = "dvorak"',
                                       lambda h, p, t: h.keyboard.vc_keymap == "dvorak"),
    "customizations.firewall": ('[customizations.firewall]\nports = ["1337:udp", "42-48:tcp"]\n'
                                '[customizations.firewall.services]\nenabled = ["ftp"]\ndisabled = ["telnet"]\n'
                                '[[customizations.firewall.zones]]\nname = "trusted"\nsources = ["10.0.0.0/8"]',
                                lambda h, p, t: h.firewall.enabled and h.firewall.ports ==
                                ["1337:udp", "42-48:tcp"] and h.firewall.services == ["ftp"] and
                                h.firewall.remove_services == ["telnet"] and "firewalld" in
                                h.packages.packageList and "firewall-offline-cmd --zone=trusted "
                                "--add-source=10.0.0.0/8" in p),
    "customizations.services": ('[customizations.services]\nenabled = ["sshd", "cockpit.socket"]\n'
                                'disabled = ["kdump"]\nmasked = ["nftables"]',
                                lambda h, p, t: h.services.enabled == ["sshd", "cockpit.socket"]
                                and h.services.disabled == ["kdump"] and "systemctl mask nftables" in p),
    "customizations.filesystem[]": ('[[customizations.filesystem]]\nmountpoint = "/var/lib/mysql"\nminsize = "1 GiB"',
                                    lambda h, p, t: _parts(h)["/var/lib/mysql"].size == 1024),
    "customizations.disk": ('[[customizations.disk.partitions]]\nmountpoint = "/srv"\nfs_type = "xfs"\n'
                            'minsize = "1 GiB"\nlabel = "bulk-data"\npart_label = "bulk"\n'
                            'part_uuid = "6b1d5d2e-7c55-4c3f-9d1e-0a1b2c3d4e5f"\nflags = ["read-only"]\n'
                            '[[customizations.disk.partitions]]\nfs_type = "swap"\nminsize = "1 GiB"\n'
                            '[[customizations.disk.partitions]]\nfs_type = "swap"\nminsize = "1 GiB"\npart_label = "swap-b"',
                            lambda h, p, t: _parts(h)["/srv"].label == "bulk-data" and
                            _parts(h)["/srv"].fstype == "xfs" and "--part-label" in p and
                            "--part-label \"$dps_part_disk\" \"$dps_part_num\" bulk" in p and
                            "6b1d5d2e-7c55-4c3f-9d1e-0a1b2c3d4e5f" in p and "GUID:60" in p and
                            "blkid -L swap" in p and "swap-b" in p),
    "customizations.directories[]": ('[[customizations.directories]]\npath = "/etc/custom_dir"\n'
                                     'mode = "0770"\nuser = 1020\ngroup = 1050',
                                     lambda h, p, t: "/etc/custom_dir" in p and "chmod 0770" in p
                                     and "chown 1020:1050 /etc/custom_dir" in p),
    "customizations.files[]": ('[[customizations.files]]\npath = "/etc/custom.conf"\ndata = "x = 1\\n"\n'
                               'mode = "0600"\nuser = "root"\ngroup = "root"',
                               lambda h, p, t: "eCA9IDEK" in p and "chmod 0600 /etc/custom.conf" in p
                               and "chown root:root /etc/custom.conf" in p),
    "customizations.repositories[]": ('[[customizations.repositories]]\nid = "example"\n'
                                      'baseurls = ["https://example.com/yum"]\ngpgcheck = false\n'
                                      'sslverify = false\nfilename = "ex"',
                                      lambda h, p, t: [(r.name, r.baseurl, r.noverifyssl) for r in
                                      h.repo.repoList if r.name == "example"] ==
                                      [("example", "https://example.com/yum", True)] and
                                      "/etc/yum.repos.d/ex.repo" in p),
    "customizations.cacerts": (f'[customizations.cacerts]\npem_certs = ["""{PEM}"""]',
                               lambda h, p, t: "/etc/pki/ca-trust/source/anchors/" in p and
                               "update-ca-trust extract" in p),
    "customizations.fips": ("[customizations]\nfips = true", None),
    "customizations.sshd": ('[customizations.sshd]\npassword_authentication = false\n'
                            'permit_root_login = "prohibit-password"',
                            lambda h, p, t: "/etc/ssh/sshd_config.d/50-dps-composer.conf" in p),
    "customizations.installation_device": ('[customizations]\ninstallation_device = "/dev/vda"',
                                           lambda h, p, t: h.ignoredisk.onlyuse == ["vda"] and
                                           h.clearpart.drives == ["vda"]),
    "customizations.partitioning_mode": ('[customizations]\npartitioning_mode = "lvm"', None),
    "customizations.fdo": ('[customizations.fdo]\nmanufacturing_server_url = "http://x"', None),
    "customizations.openscap": ('[customizations.openscap]\nprofile_id = "cis"', None),
    "customizations.ignition": ('[customizations.ignition.firstboot]\nurl = "http://x"', None),
    "customizations.installer": ("[customizations.installer]\nunattended = true", None),
    "customizations.rpm": ('[customizations.rpm.import_keys]\nfiles = ["/k"]', None),
    "customizations.rhsm": ("[customizations.rhsm.config.dnf_plugins.product_id]\nenabled = true", None),
    "customizations.containers-storage": ('[customizations.containers-storage]\ndestination-path = "/x"', None),
    "customizations.firstboot": ('[[customizations.firstboot.scripts]]\nname = "x"', None),
    "customizations.dnf": ("[customizations.dnf.config]\nset_releasever = true", None),
    "customizations.iso": ('[customizations.iso]\nvolume_id = "X"', None),
    "boot.loader, boot.timeout": ('[boot]\nloader = "systemd-boot"\ntimeout = 3',
                                  lambda h, p, t: h.bootloader.location == "none" and
                                  "timeout %s\\n' 3 >>/boot/efi/loader/loader.conf" in p),
    "boot.cmdline": ('[boot]\ncmdline = "console=ttyS0 quiet"', None),
    "secureboot": ("[secureboot]\nsign = true", None),
    "measured": ("[measured]\nsign_policy = true", None),
    "image.size, image.esp_size": ('[image]\nsize = "20 GiB"\nesp_size = "512 MiB"',
                                   lambda h, p, t: _parts(h)["/boot/efi"].size == 512 and
                                   "installer: image.size" in t),
    "image.machine_id": (f'[image]\nmachine_id = "{MID}"', lambda h, p, t: f"{MID}' >/etc/machine-id" in p
                         or f"{MID} >/etc/machine-id" in p),
    "image.formats, image.qcow2_compression, image.seed, validate": (
        '[image]\nformats = ["qcow2"]\n[validate]\ntimeout = "5 min"',
        lambda h, p, t: "installer: image.formats, validate" in t),
}  # fmt: skip


def test_every_key_of_the_table_has_a_sample() -> None:
    assert set(SAMPLES) == {r.key for r in keytable.ROWS}


def _refused_key(row: keytable.Row) -> str:
    return row.key.split(",")[0].strip().replace("[]", "")


@pytest.mark.parametrize("row", keytable.ROWS, ids=lambda r: r.key)
def test_kickstart_renders_every_key_or_refuses_it_by_name(row: keytable.Row) -> None:
    fragment, probe = SAMPLES[row.key]
    bp = parse(BASE + fragment + "\n", "ks.toml")
    if row.kickstart.refused or probe is None:
        assert probe is None and row.kickstart.refused, f"{row.key}: table and sample disagree"
        with pytest.raises(BlueprintError) as info:
            render(bp)
        keys = [re.sub(r"\[\d+\]", "", p.key) for p in info.value.problems]
        assert any(k.startswith(_refused_key(row)) for k in keys), (keys, str(info.value))
        assert "kickstarts" in str(info.value)
        return
    text = render(bp)
    parser = KickstartParser(makeVersion("F42"), errorsAreFatal=True)
    parser.readKickstartFromString(text)
    post = "\n".join(s.script for s in parser.handler.scripts)
    assert probe(parser.handler, post, text), text


@pytest.mark.parametrize(("target", "distro"), [("debian", "debian-13"), ("fedora", "fedora-42")])
def test_images_refuse_by_name_what_the_table_says(target: keytable.Target, distro: str) -> None:
    for row in keytable.ROWS:
        if not row.cell(target).refused:
            continue
        fragment, _ = SAMPLES[row.key]
        bp = parse(f'name = "x"\ndistro = "{distro}"\n{fragment}\n', "img.toml")
        with pytest.raises(BlueprintError) as info:
            make_plan(bp)
        keys = [p.key for p in info.value.problems]
        assert any(k.startswith(_refused_key(row)) for k in keys), (row.key, keys)
        assert all(p.line for p in info.value.problems), info.value


def test_the_blueprint_reference_key_table_is_the_codes() -> None:
    reference = (ROOT / "docs" / "blueprint.md").read_text()
    m = re.search(r"<!-- key table: .*? -->\n(.*?)<!-- end of key table -->", reference, re.S)
    assert m is not None, "docs/blueprint.md has no generated key table"
    assert m.group(1) == keytable.markdown(), (
        "the key table of docs/blueprint.md is stale: replace it with keytable.markdown()"
    )
