"""Hostile values for every blueprint key that reaches a path in the image, an argument
list, a configuration file or a template: refused when the blueprint is read, naming the
file, the line and the key; values that only look unusual still pass."""

from __future__ import annotations

import json
import re

import pytest

from composer.core.errors import BlueprintError
from composer.plan.load import parse
from composer.plan.plan import make_plan

FILE = "hostile.toml"


def toml(value: object) -> str:
    return json.dumps(value)  # a JSON string or array of strings is a TOML value too


# (TOML after `name = "x"`, dotted key the refusal must name, words the message must hold)
REFUSED: list[tuple[str, str, str]] = [
    # paths in the image: places hidden at boot, control characters
    ('[[customizations.files]]\npath = "/var/run/app.conf"', "customizations.files[0].path", "/run"),
    ('[[customizations.files]]\npath = "/var/lock/x"', "customizations.files[0].path", "/run/lock"),
    ('[[customizations.files]]\npath = "/run/x"', "customizations.files[0].path", "tmpfs"),
    ('[[customizations.files]]\npath = "/tmp/x"', "customizations.files[0].path", "tmpfs"),
    ('[[customizations.files]]\npath = "/dev/x"', "customizations.files[0].path", "/dev"),
    ('[[customizations.files]]\npath = "/etc/a\\u0001b"', "customizations.files[0].path", "control"),
    ('[[customizations.files]]\npath = "/etc/a\\tb"', "customizations.files[0].path", "control"),
    ('[[customizations.directories]]\npath = "/var/run/d"', "customizations.directories[0].path", "/run"),
    ('[[customizations.directories]]\npath = "/etc/d\\u007f"', "customizations.directories[0].path", "control"),
    ('[[customizations.user]]\nname = "u"\nhome = "/var/run/u"', "customizations.user[0].home", "/run"),
    ('[[customizations.user]]\nname = "u"\nhome = "/home/a:b"', "customizations.user[0].home", "':'"),
    ('[[customizations.user]]\nname = "u"\nshell = "/bin/sh\\u001b"', "customizations.user[0].shell", "control"),
    # mount points: crossing a link the target's tree has, control characters
    ('[[customizations.filesystem]]\nmountpoint = "/var/run/data"', "customizations.filesystem[0].mountpoint", "/var/run -> /run"),
    ('[[customizations.disk.partitions]]\nmountpoint = "/var/lock/x"', "customizations.disk.partitions[0].mountpoint", "/var/lock -> /run/lock"),
    ('distro = "fedora-42"\n[[customizations.filesystem]]\nmountpoint = "/usr/tmp/x"', "customizations.filesystem[0].mountpoint", "/usr/tmp -> ../var/tmp"),
    ('distro = "fedora-42"\n[[customizations.filesystem]]\nmountpoint = "/var/mail"', "customizations.filesystem[0].mountpoint", "/var/mail -> spool/mail"),
    ('[[customizations.disk.partitions]]\nmountpoint = "/data\\u0085"', "customizations.disk.partitions[0].mountpoint", "control"),
    ('[[customizations.disk.partitions]]\nmountpoint = "/data"\nlabel = "a\\nb"', "customizations.disk.partitions[0].label", "control"),
    # argument lists: options in disguise
    ('[customizations.services]\nenabled = ["--root"]', "customizations.services.enabled[0]", "option"),
    ('[customizations.services]\ndisabled = ["--global"]', "customizations.services.disabled[0]", "option"),
    ('[customizations.services]\nmasked = ["-f"]', "customizations.services.masked[0]", "option"),
    ('[customizations.services]\nenabled = ["-.slice"]', "customizations.services.enabled[0]", "option"),
    ('[customizations.services]\nenabled = ["a/b.service"]', "customizations.services.enabled[0]", "unit name"),
    ('[customizations.services]\nenabled = ["@x.service"]', "customizations.services.enabled[0]", "unit name"),
    ('[customizations.services]\nenabled = ["x.service\\n"]', "customizations.services.enabled[0]", "unit name"),
    ('[customizations.services]\nenabled = ["' + "a" * 250 + '.service"]', "customizations.services.enabled[0]", "256"),
    ('[customizations.services]\nenabled = [""]', "customizations.services.enabled[0]", "unit name"),
    ('[[customizations.user]]\nname = "u"\ngroups = ["-x"]', "customizations.user[0].groups[0]", "group name"),
    ('[[customizations.user]]\nname = "u"\ngroups = ["a,b"]', "customizations.user[0].groups[0]", "group name"),
    ('[[customizations.user]]\nname = "u"\ndescription = "a:b"', "customizations.user[0].description", "':'"),
    ('[[customizations.user]]\nname = "u"\ndescription = "a\\nb"', "customizations.user[0].description", "control"),
    ('[[customizations.user]]\nname = "u"\npassword = "pa\\u0000ss"', "customizations.user[0].password", "control"),
    ('[[customizations.group]]\nname = "-g"', "customizations.group[0].name", "group name"),
    ('[[customizations.sshkey]]\nuser = "-u"\nkey = "ssh-ed25519 AAAA"', "customizations.sshkey[0].user", "user name"),
    ('[[packages]]\nname = "-x"', "packages[0].name", "package name"),
    ('[[packages]]\nname = "vim"\nversion = "-1"', "packages[0].version", "version"),
    ('[[packages]]\nname = "a,b"', "packages[0].name", "package name"),
    # configuration files and templates
    ('[[customizations.sshkey]]\nuser = "root"\nkey = "ssh-ed25519 AAAA\\ncommand=\\"x\\" ssh-rsa B"', "customizations.sshkey[0].key", "control"),
    ('[[customizations.user]]\nname = "u"\nkey = "ssh-ed25519 A\\rB"', "customizations.user[0].key", "control"),
    ('[customizations.timezone]\nntpservers = ["a.example\\nNTP=evil"]', "customizations.timezone.ntpservers[0]", "control"),
    ('[customizations.timezone]\nntpservers = ["a b"]', "customizations.timezone.ntpservers[0]", "white space"),
    ('[customizations.timezone]\nntpservers = ["-x"]', "customizations.timezone.ntpservers[0]", "option"),
    ('[customizations.timezone]\ntimezone = "Europe/Berlin\\n"', "customizations.timezone.timezone", "control"),
    ('[customizations.kernel]\nappend = "quiet\\ninit=/bin/sh"', "customizations.kernel.append", "control"),
    ('[boot]\ncmdline = "console=ttyS0\\u0000"', "boot.cmdline", "control"),
    ('version = "1.0\\n"', "version", "control"),
    ('[secureboot]\nsign = true\nkeys = "k\\u0007"', "secureboot.keys", "control"),
    ('[customizations.locale]\nkeyboard = "-us"', "customizations.locale.keyboard", "keymap"),
    ('[customizations.locale]\nlanguages = ["en_US.UTF-8\\nLANG=x"]', "customizations.locale.languages", "locale"),
    ('[customizations]\nhostname = "-h"', "customizations.hostname", "host name"),
    ('[customizations]\nhostname = "a\\nb"', "customizations.hostname", "host name"),
    ('[customizations.kernel]\nname = "-x"', "customizations.kernel.name", "kernel package"),
    ('[[customizations.files]]\npath = "/etc/x"\nuser = "-u"', "customizations.files[0].user", "user/group name"),
    ('[[customizations.files]]\npath = "/etc/x"\nmode = "4755"', "customizations.files[0].mode", "octal"),
    ('[[customizations.disk.partitions]]\nmountpoint = "/data"\npart_label = "a\\"b"', "customizations.disk.partitions[0].part_label", "GPT"),
    ('[image]\nmachine_id = "../../etc"', "image.machine_id", "machine ID"),
    ('[[customizations.repositories]]\nid = "x"\nbaseurls = ["https://a\\nb"]\ngpgcheck = false', "customizations.repositories[0].baseurls", "control"),
]  # fmt: skip

ACCEPTED = [
    '[[customizations.files]]\npath = "/lib/systemd/system/x.service"\ndata = "[Unit]\\n"',
    '[[customizations.files]]\npath = "/usr/local/bin/run-me"\ndata = "#!/bin/sh\\n"\nmode = "0755"',
    '[[customizations.directories]]\npath = "/var/lib/app"\nensure_parents = true',
    '[[customizations.directories]]\npath = "/srv/tmp/run"',  # only the top-level places count
    '[customizations.services]\nenabled = ["ssh", "getty@ttyS0.service", "x.timer", "foo.bar"]',
    '[customizations.services]\nmasked = ["systemd-networkd-wait-online.service"]',
    '[[customizations.filesystem]]\nmountpoint = "/var/cache/app"',
    '[[customizations.filesystem]]\nmountpoint = "/tmp"',  # a partition there is fine
    '[[customizations.user]]\nname = "u"\ndescription = "Ops - on call"\ngroups = ["sudo"]',
    '[customizations.timezone]\nntpservers = ["0.debian.pool.ntp.org", "192.0.2.1"]',
]


@pytest.mark.parametrize(
    ("snippet", "key", "words"), REFUSED, ids=[r[1] + ":" + r[0][-24:] for r in REFUSED]
)
def test_hostile_value_is_refused_naming_file_line_and_key(
    snippet: str, key: str, words: str
) -> None:
    text = f'name = "x"\n{snippet}\n'
    with pytest.raises(BlueprintError) as exc:
        make_plan(parse(text, FILE), FILE)
    err = exc.value
    assert err.file == FILE and err.key == key, str(err)
    assert err.line is not None and err.line > 1, str(err)
    assert re.search(re.escape(words), err.message, re.IGNORECASE), str(err)


@pytest.mark.parametrize("snippet", ACCEPTED)
def test_usual_values_pass(snippet: str) -> None:
    make_plan(parse(f'name = "x"\n{snippet}\n', FILE), FILE)
