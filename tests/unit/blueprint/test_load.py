"""10,000 generated blueprints through the loader and the planner (hypothesis): no
traceback ever escapes (any exception but a BlueprintError fails the test), and every
refusal names the file, a line of it and a key path.

Documents are built from osbuild's key schema (plus the composer's extension tables), with
each value drawn from good values, wrong types and junk, and unknown keys mixed in; they are
written as TOML text (tables, arrays of tables, inline values) and parsed as a user's file.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.core.errors import BlueprintError
from composer.plan.plan import plan_text

FILE = "fuzz.toml"
text_ = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
# values that try to be options, lines, markup, paths out of the image or hidden at boot
hostile = st.sampled_from(
    ["-f", "--root", "--global", "-.slice", "a\nb", "x\r\ny=1", "\x00", "\x1b[31m", "[/x]",
     "[link=file:///etc]a[/link]", "a:b", "a,b", "/var/run/x", "/var/lock/x", "/run/x",
     "/tmp/x", "/dev/sda", "../../etc/shadow", "\u2028", "x" * 300]
)  # fmt: skip
junk = st.one_of(
    text_,
    hostile,
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.lists(st.one_of(text_, st.integers(-5, 5)), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "name"]), st.integers(0, 3), max_size=2),
)
sizes = st.one_of(
    st.sampled_from(["64 MiB", "300 MiB", "1 GiB", "2 GiB", "3 GB", "1.5 GiB", "0", "x MiB"]),
    st.integers(0, 8 * 2**30),
)
mountpoints = st.sampled_from(
    ["/", "/usr", "/home", "/srv", "/var", "/var/tmp", "/boot", "/efi", "/boot/efi", "/opt",
     "/tmp", "/data", "swap", "", "/etc", "relative", "/a/../b", "/home/", "/var/run/x",
     "/var/lock", "/usr/tmp", "/var/mail/x", "/data\x01"]
)  # fmt: skip
part_types = st.sampled_from(
    ["", "root", "usr", "home", "srv", "linux-generic", "esp", "swap", "root-arm64",
     "933ac7e1-2eb4-4f13-b844-0e14e2aef915", "0FC63DAF-8483-4772-8e79-3d69d8477de4",
     "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "bogus"]
)  # fmt: skip
names = st.sampled_from(["admin", "root", "u1", "Bad Name", "_x", "widget", "users", "-x"])
paths = st.sampled_from(["/etc/x", "x", "/a/../b", "/var/run/x", "/lib/systemd/system/a.service",
                         "/run/x", "/tmp/x", "/etc/a\tb", "/dev/x", "/etc/fstab"])  # fmt: skip
units = st.sampled_from(["ssh", "a b", "x.timer", "--root", "-f", "getty@ttyS0.service",
                         "@x.service", "a/b.service", "x.service\n", "foo.bar"])  # fmt: skip


def maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a good value, sometimes junk."""
    return st.one_of(good, good, good, junk)


def table(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    base = st.fixed_dictionaries(
        {k: maybe(v) for k, v in required.items()},
        optional={k: maybe(v) for k, v in optional.items()},
    )
    extra = st.dictionaries(st.sampled_from(["bogus", "Name", "extra_key"]), junk, max_size=1)
    return st.one_of(base, base, base, st.builds(lambda a, b: {**a, **b}, base, extra))


def aot(entry: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(entry, max_size=3)


partition = table(
    {},
    {
        "type": st.sampled_from(["plain", "lvm", "btrfs", "x"]),
        "minsize": sizes,
        "mountpoint": mountpoints,
        "label": st.sampled_from(["", "data", "x" * 20]),
        "fs_type": st.sampled_from(["ext4", "xfs", "btrfs", "vfat", "swap", "erofs", "ntfs"]),
        "part_type": part_types,
        "part_label": st.sampled_from(["", "debian", 'bad"quote', "y" * 40]),
        "part_uuid": st.sampled_from(["", "not-a-uuid", "4d21b016-b534-45c2-a9fb-5c16e091fd2d"]),
        "flags": st.lists(st.sampled_from(["grow-fs", "read-only", "no-auto", "fast"]), max_size=3),
        "versioned_label": st.booleans(),
    },
)
customizations = table(
    {},
    {
        "hostname": st.sampled_from(["host", "a.b.c", "-bad-", "x" * 70]),
        "kernel": table({}, {"name": st.sampled_from(["kernel", "linux-image-amd64", "kernel-rt"]),
                             "append": st.sampled_from(["quiet", "root=/dev/sda1", ""])}),
        "sshkey": aot(table({"user": names, "key": text_}, {})),
        "user": aot(
            table(
                {"name": names},
                {"description": text_, "password": st.sampled_from(["", "plain", "$6$s$h", "a:b"]),
                 "key": text_, "home": st.sampled_from(["/home/x", "rel", "/", "/var/run/x", "/h/a:b"]),
                 "shell": st.sampled_from(["/bin/bash", "sh"]), "groups": st.lists(names, max_size=2),
                 "uid": st.integers(-2, 70000), "gid": st.integers(-2, 70000),
                 "expiredate": st.integers(-1, 3_000_000), "force_password_reset": st.booleans()},
            )
        ),
        "group": aot(table({"name": names}, {"gid": st.integers(-1, 70000)})),
        "timezone": table({}, {"timezone": st.sampled_from(["UTC", "Europe/Berlin", "../x"]),
                               "ntpservers": st.lists(st.one_of(text_, hostile), max_size=2)}),
        "locale": table({}, {"languages": st.lists(st.sampled_from(["en_US.UTF-8", "C.UTF-8", "bad lang"]), max_size=2),
                             "keyboard": st.sampled_from(["us", "de-latin1", "no way"])}),
        "firewall": table({}, {"ports": st.lists(st.just("22:tcp"), max_size=1)}),
        "services": table({}, {"enabled": st.lists(units, max_size=2),
                               "disabled": st.lists(st.one_of(text_, units), max_size=1),
                               "masked": st.lists(st.one_of(text_, units), max_size=1)}),
        "filesystem": aot(table({"mountpoint": mountpoints}, {"minsize": sizes})),
        "disk": table({}, {"type": st.sampled_from(["gpt", "dos"]), "minsize": sizes,
                           "partitions": aot(partition)}),
        "installation_device": st.sampled_from(["", "/dev/sda"]),
        "partitioning_mode": st.sampled_from(["raw", "lvm", "auto-lvm"]),
        "fips": st.booleans(),
        "directories": aot(table({"path": paths},
                                 {"mode": st.sampled_from(["0755", "999", "755"]), "user": names,
                                  "group": st.one_of(names, st.integers(-1, 5)), "ensure_parents": st.booleans()})),
        "files": aot(table({"path": paths},
                           {"mode": st.sampled_from(["0644", "8", "600"]), "user": names, "data": text_})),
        "cacerts": table({}, {"pem_certs": st.lists(st.sampled_from(["junk", "-----BEGIN CERTIFICATE-----\nx"]), max_size=1)}),
        "openscap": table({}, {"profile_id": text_}),
        "repositories": aot(table({"id": st.sampled_from(["r", "bad id", "-x"])},
                                  {"baseurls": st.lists(st.sampled_from(
                                      ["https://example.org/r", "file:///etc", "ftp://x", "x\ny"]), max_size=1),
                                   "name": st.one_of(text_, hostile), "gpgcheck": st.booleans(),
                                   "gpgkeys": st.lists(st.sampled_from(["https://example.org/k", "junk"]), max_size=1),
                                   "metalink": hostile, "mirrorlist": hostile})),
        "installer": table({}, {"unattended": st.booleans()}),
        "rhsm": junk,
        "containers-storage": table({}, {"destination-path": text_}),
    },
)  # fmt: skip
blueprints = table(
    {"name": st.sampled_from(["img", "my-image_1.0", "bad name", ""])},
    {
        "description": text_,
        "version": st.sampled_from(["0.0.1", "1.0", "2024.1", "1.0\n"]),
        "distro": st.sampled_from(["debian-13", "fedora-42", "fedora-99", "centos-stream-9", "rhel-9"]),
        "architecture": st.sampled_from(["x86_64", "aarch64", "s390x"]),
        "packages": aot(table({"name": st.sampled_from(["tmux", "vim", "Bad_Pkg"])},
                              {"version": st.sampled_from(["*", "3.*", "1.36.*", "x y"])})),
        "modules": aot(table({"name": st.sampled_from(["htop"])}, {"version": st.just("*")})),
        "groups": aot(table({"name": text_}, {})),
        "containers": aot(table({"source": text_}, {"name": text_})),
        "minimal": st.booleans(),
        "customizations": customizations,
        "image": table({}, {"size": sizes, "machine_id": st.sampled_from(["5f3c0de1a2b94c7e8d6f1a2b3c4d5e6f", "xyz"]),
                            "seed": text_, "esp_size": sizes}),
        "validate": table({}, {"timeout": st.sampled_from(["10 min", "x", 30])}),
        "boot": table({}, {"cmdline": st.one_of(text_, hostile), "loader": st.sampled_from(["grub2", "x"])}),
        "secureboot": table({}, {"sign": st.booleans(), "keys": st.one_of(text_, hostile)}),
    },
)  # fmt: skip

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _tstr(v: str) -> str:
    """A TOML basic string (JSON's escapes would split astral characters into surrogates)."""
    out = []
    for c in v:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _key(k: str) -> str:
    return k if _BARE.match(k) else _tstr(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _tstr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _is_aot(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def to_toml(doc: dict[str, Any], path: tuple[str, ...] = ()) -> list[str]:
    lines = [
        f"{_key(k)} = {_value(v)}"
        for k, v in doc.items()
        if not (isinstance(v, dict) or _is_aot(v))
    ]
    for k, v in doc.items():
        sub = (*path, k)
        header = ".".join(_key(p) for p in sub)
        if isinstance(v, dict):
            lines += [f"[{header}]", *to_toml(v, sub)]
        elif _is_aot(v):
            for item in v:
                lines += [f"[[{header}]]", *to_toml(item, sub)]
    return lines


def check_rejection(e: BlueprintError, text: str) -> None:
    assert e.file == FILE
    assert e.line is not None and 1 <= e.line <= max(1, text.count("\n") + 1), (e, text)
    assert e.key, (e, text)
    assert str(e).startswith(f"{FILE}:{e.line}: {e.key}: "), e


@settings(
    max_examples=10_000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(blueprints)
def test_generated_blueprints_never_escape_as_tracebacks(doc: dict[str, Any]) -> None:
    text = "\n".join(to_toml(doc)) + "\n"
    try:
        plan_text(text, FILE).to_json()
    except BlueprintError as e:  # parse or plan: the same requirements for both
        check_rejection(e, text)
