"""What a package brings that a blueprint can name: systemd units (and their aliases) and the
users and groups it creates (sysusers.d files and maintainer scripts). Read from .deb files
without installing them; remembered per package file in the cache (content-named files: a
package file never changes)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import lzma
import os
import re
import shlex
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from composer.core import tools
from composer.core.errors import HostError
from composer.core.files import atomic_write

UNIT_DIRS = ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system",
             "usr/local/lib/systemd/system")  # fmt: skip
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".automount",
                 ".swap", ".slice", ".scope", ".device")  # fmt: skip
SYSUSERS_DIRS = ("usr/lib/sysusers.d", "lib/sysusers.d")
_CREATORS = ("adduser", "addgroup", "useradd", "groupadd")
_OPERATOR = re.compile(r"^[;&|<>()]+$|^\d?>")
FACTS_VERSION = 2  # bump when what is read changes: older remembered facts are read again
# (2: hard links listed by their own names; 1 listed them as "NAME link to TARGET")


@dataclass(frozen=True)
class PackageFacts:
    units: tuple[str, ...] = ()  # unit file names and the names they alias
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=(), repr=False)  # /usr/sbin/sshd, ... (programs)


def unit_file(path: str) -> str | None:
    """The unit name of a path in a unit directory (None for anything else)."""
    p = PurePosixPath(path.lstrip("./").lstrip("/"))
    if str(p.parent) in UNIT_DIRS and p.name.endswith(UNIT_SUFFIXES):
        return p.name
    return None


def unit_name(name: str) -> str:
    """systemctl's reading of a name without a suffix: a service."""
    return name if re.search(r"\.[a-z]+$", name) else f"{name}.service"


def unit_aliases(text: str) -> list[str]:
    """The names an ``[Install]`` section's ``Alias=`` lines give a unit."""
    out: list[str] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
        elif section == "[Install]" and line.startswith("Alias="):
            out += line.removeprefix("Alias=").split()
    return out


def sysusers_entries(text: str) -> Iterator[tuple[str, str, str]]:
    """(type, name, ID field or "-") of each line of a sysusers.d file (sysusers.d(5); the
    type without its "!")."""
    for raw in text.splitlines():
        words = raw.split()
        if len(words) < 2 or words[0].startswith("#"):
            continue
        yield words[0].rstrip("!"), words[1], words[2] if len(words) > 2 else "-"


def sysusers(text: str) -> tuple[set[str], set[str]]:
    """(users, groups) a sysusers.d file creates (u NAME makes a group NAME too)."""
    users, groups = set(), set()
    for kind, name, id_field in sysusers_entries(text):
        if kind == "u":
            users.add(name)
            if ":" not in id_field:  # "u NAME UID:GROUP" joins GROUP
                groups.add(name)
        elif kind == "g":
            groups.add(name)
    return users, groups


def _logical_lines(script: str) -> list[str]:
    return script.replace("\\\n", " ").splitlines()


def script_accounts(script: str) -> tuple[set[str], set[str]]:
    """(users, groups) that adduser/addgroup/useradd/groupadd calls in a maintainer script
    create: the command's last plain word (Debian policy 9.2.2's way of making them)."""
    users: set[str] = set()
    groups: set[str] = set()
    for line in _logical_lines(script):
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:
            continue
        # "2>/dev/null": the descriptor number belongs to the redirection
        words = [t for i, t in enumerate(tokens)
                 if not (t.isdigit() and tokens[i + 1 : i + 2] and tokens[i + 1][0] in "<>")]  # fmt: skip
        for i, word in enumerate(words):
            if PurePosixPath(word).name in _CREATORS:
                command = list(
                    itertools.takewhile(lambda w: not _OPERATOR.match(w), words[i + 1 :])
                )
                _account(PurePosixPath(word).name, command, users, groups)
    return users, groups


# options of adduser/addgroup/useradd/groupadd that take a value
_VALUED = {"--home", "--shell", "--ingroup", "--gid", "--uid", "--gecos", "--comment", "--conf",
           "--firstuid", "--lastuid", "--firstgid", "--lastgid", "--home-dir", "--groups",
           "--key", "--password", "--expiredate", "--inactive", "--skel", "--root",
           "--prefix", "-d", "-s", "-g", "-G", "-u", "-c", "-k", "-K", "-p", "-e", "-f",
           "-R", "-P", "-b"}  # fmt: skip


def _account(tool: str, command: list[str], users: set[str], groups: set[str]) -> None:
    words = [w for i, w in enumerate(command)
             if not w.startswith("-") and (i == 0 or command[i - 1] not in _VALUED)]  # fmt: skip
    if not words or not re.fullmatch(r"[a-z_][a-z0-9_.-]*\$?", words[-1]):
        return  # a name from a variable: not knowable here
    name = words[-1]
    if tool in ("addgroup", "groupadd"):
        if len(words) == 1:
            groups.add(name)
    elif len(words) == 1:
        users.add(name)
        if "--group" in command or tool == "useradd":
            groups.add(name)


AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60  # name 16, mtime 12, uid 6, gid 6, mode 8, size 10, magic "`\n" (ar(5))
# tar members Python reads itself (zlib, bz2, lzma); another compression (zstd): dpkg-deb
TarMode = Literal["r|", "r|gz", "r|bz2", "r|xz"]
TAR_MODES: dict[str, TarMode] = {"": "r|", ".gz": "r|gz", ".bz2": "r|bz2", ".xz": "r|xz"}


class PackageReadError(HostError):
    """A downloaded package file that cannot be read (damaged in the package cache)."""


class _Member(io.RawIOBase):
    """One member of an ar archive, read in place (a kernel package's data is 100 MB)."""

    def __init__(self, fh: io.BufferedReader, offset: int, size: int) -> None:
        fh.seek(offset)
        self._fh, self._left = fh, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        got = self._fh.readinto(view)
        if not got and self._left:
            raise EOFError("ar member cut short")
        self._left -= got or 0
        return got or 0


def _ar_members(fh: io.BufferedReader) -> dict[str, tuple[int, int]]:
    """Each member of an ar archive (a .deb: deb(5)): name -> (offset, size)."""
    if fh.read(len(AR_MAGIC)) != AR_MAGIC:
        raise ValueError("not an ar archive")
    members = {}
    while header := fh.read(AR_HEADER):
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise ValueError("damaged ar member header")
        name = header[:16].decode("ascii", "replace").strip().removesuffix("/")
        size = int(header[48:58].decode("ascii"))
        if size < 0:  # a seek back would read the same header for ever
            raise ValueError("negative ar member size")
        members[name] = (fh.tell(), size)
        fh.seek(size + (size & 1), os.SEEK_CUR)  # members start on even offsets
    return members


@contextlib.contextmanager
def _members(deb: Path, ctrl: bool) -> Iterator[tarfile.TarFile]:
    """The control or the data tar archive of a .deb, read as a stream: in this process when
    Python decompresses it (no dpkg-deb and reaper per package: a cold build reads about
    170), else from dpkg-deb."""
    prefix = "control.tar" if ctrl else "data.tar"
    with open(deb, "rb") as fh:
        try:
            members = _ar_members(fh)
        except (ValueError, OSError):
            members = {}
        found = [(n, at) for n, at in members.items() if n.startswith(prefix)]
        mode = TAR_MODES.get(found[0][0][len(prefix) :]) if len(found) == 1 else None
        if mode is not None:
            try:
                with tarfile.open(fileobj=_Member(fh, *found[0][1]), mode=mode) as tar:
                    yield tar
            except (tarfile.TarError, lzma.LZMAError, zlib.error, OSError, EOFError) as err:
                raise PackageReadError(f"{deb}: cannot read its {prefix}: {err}") from None
            return
    flag = "--ctrl-tarfile" if ctrl else "--fsys-tarfile"
    data = tools.run(["dpkg-deb", flag, "--", deb], capture=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        yield tar


def _text(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    fh = tar.extractfile(member)
    return fh.read().decode(errors="replace") if fh is not None else ""


def _installed(member: tarfile.TarInfo) -> str:
    """The path a data tar member installs (./usr/bin/x -> /usr/bin/x)."""
    return "/" + member.name.removeprefix("./").lstrip("/")


def deb_paths(deb: Path) -> list[str]:
    """Every file a .deb installs (symbolic links too, directories not), as /usr/share/..."""
    with _members(deb, ctrl=False) as tar:
        return [_installed(m) for m in tar if not m.isdir()]


def deb_text(deb: Path, path: str) -> str:
    """The text of one file a .deb installs ("" when it has none)."""
    with _members(deb, ctrl=False) as tar:
        for m in tar:
            if _installed(m) == path and m.isfile():
                return _text(tar, m)
    return ""


def read_deb(deb: Path) -> PackageFacts:
    """The facts of one .deb: its file list and the few files that matter, read in one pass
    over its data, then its maintainer scripts."""
    names: list[str] = []
    units: set[str] = set()
    users: set[str] = set()
    groups: set[str] = set()
    with _members(deb, ctrl=False) as tar:
        for m in tar:
            if m.isdir():
                continue
            names.append(_installed(m))
            name = unit_file(m.name)
            if name:
                units.add(name)
                if m.isfile():
                    units.update(unit_aliases(_text(tar, m)))
            elif _is_sysusers(m.name) and m.isfile():
                u, g = sysusers(_text(tar, m))
                users |= u
                groups |= g
    with _members(deb, ctrl=True) as tar:
        for m in tar:
            if PurePosixPath(m.name).name in ("preinst", "postinst") and m.isfile():
                u, g = script_accounts(_text(tar, m))
                users |= u
                groups |= g
    programs = sorted(n for n in names if re.search(r"/s?bin/[^/]+$", n))
    return PackageFacts(tuple(sorted(units)), tuple(sorted(users)), tuple(sorted(groups)),
                        tuple(programs))  # fmt: skip


def _is_sysusers(path: str) -> bool:
    p = PurePosixPath(path.lstrip("./").lstrip("/"))
    return str(p.parent) in SYSUSERS_DIRS and p.name.endswith(".conf")


def facts(deb: Path, memo_dir: Path) -> PackageFacts:
    """``read_deb``, remembered in ``memo_dir`` by the package file's name."""
    memo = memo_dir / f"{deb.name}.v{FACTS_VERSION}.json"
    if memo.is_file():
        data = json.loads(memo.read_text())
        return PackageFacts(**{k: tuple(v) for k, v in data.items()})
    found = read_deb(deb)
    memo_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(memo, json.dumps(dataclasses.asdict(found)) + "\n")
    return found
