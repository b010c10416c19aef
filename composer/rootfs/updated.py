"""/etc/.updated and /var/.updated, written when the build can show they would be true.

systemd runs a set of update services at boot while ``ConditionNeedsUpdate=/etc`` or ``/var``
holds, that is while the directory's ``.updated`` stamp is missing or older than /usr
(systemd.unit(5), ConditionNeedsUpdate=; systemd-update-done.service(8) writes the stamps):
ldconfig.service, systemd-sysusers.service and systemd-hwdb-update.service for /etc,
systemd-journal-catalog-update.service for /var. Their purpose is an offline update of /usr;
on a fresh image they redo what the package manager's triggers already did, at the first
boot of every machine (about 2-4 s under TCG, most of it the catalog and ldconfig).

mkosi leaves the stamps out because it cannot know that the build left nothing for those
services to do (https://github.com/systemd/mkosi/issues/3338, pull request 3602: a
sysusers.d file or a library added by hand still needs them). The build here writes a stamp
only with evidence, from the tree itself, that each service behind it would change nothing:

- ldconfig: /etc/ld.so.cache is not empty and no older than /etc/ld.so.conf and what it
  includes, and no library directory ldconfig reads (nor their glibc-hwcaps subdirectories)
  has changed since, but for entries ldconfig skips (the build's own /usr/lib/repart.d);
- sysusers: every user, group and membership the sysusers.d files declare exists in
  /etc/passwd and /etc/group;
- hwdb: the hwdb.bin systemd-hwdb-update would write is no older than the hwdb.d files;
- catalog: /var/lib/systemd/catalog/database is no older than the catalog files.

A stamp and /usr both get SOURCE_DATE_EPOCH as their mtime, the time every inode of the
image's file systems has (a stamp as old as /usr means no update is needed), and the stamp
says it in TIMESTAMP_NSEC as systemd-update-done does: the image stays bit-identical from
build to build. When /usr later changes (an offline update of the image), the services run
again as systemd intends.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from composer.core.log import note
from composer.rootfs.intree import Tree
from composer.rootfs.pkgfacts import sysusers_entries

LOG = logging.getLogger(__name__)

STAMP = (
    "# This file was created by dps-composer at build time, as systemd-update-done would\n"
    "# at the first boot: it holds the time /etc or /var was last updated from /usr.\n"
    "# See man:systemd-update-done.service(8).\n"
    "TIMESTAMP_NSEC={nsec}\n"
)
LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")  # ldconfig's trusted directories
SYSUSERS_DIRS = ("/etc/sysusers.d", "/run/sysusers.d", "/usr/local/lib/sysusers.d",
                 "/usr/lib/sysusers.d")  # fmt: skip
HWDB_DIRS = ("/etc/udev/hwdb.d", "/usr/lib/udev/hwdb.d")
CATALOG_DIRS = ("/usr/local/lib/systemd/catalog", "/usr/lib/systemd/catalog")
CATALOG = "/var/lib/systemd/catalog/database"


@dataclass(frozen=True)
class Stamps:
    """Which stamps were written, and for each one left out, why."""

    written: tuple[str, ...]
    missing: tuple[tuple[str, str], ...]  # (stamp, reason)


def mark_updated(tree: Path, epoch: int) -> Stamps:
    """Write the stamps the tree has evidence for (see the module's docstring), at ``epoch``
    (SOURCE_DATE_EPOCH)."""
    with Tree(tree) as t:
        if t.stat("/usr") is None:
            return Stamps((), (("/etc/.updated", "no /usr"), ("/var/.updated", "no /usr")))
        found = {
            "/etc/.updated": _ldconfig_stale(t) or _sysusers_missing(t) or _hwdb_stale(t),
            "/var/.updated": _newer_than(t, CATALOG, _dir_and_files(t, CATALOG_DIRS)),
        }
        # the image's names reach the build log and a terminal: control characters escaped
        reasons = {stamp: _shown(reason) for stamp, reason in found.items()}
        nsec = epoch * 1_000_000_000
        written = []
        for stamp, reason in reasons.items():
            if reason:
                note(LOG, f"{stamp} left out (its services run at first boot): {reason}")
                continue
            t.write(stamp, STAMP.format(nsec=nsec))
            written.append(stamp)
        for path in ["/usr", *written] if written else []:
            with t.opened(path, os.O_RDONLY, follow=False) as fd:
                os.utime(fd, ns=(nsec, nsec))
        return Stamps(tuple(written), tuple((s, r) for s, r in reasons.items() if r))


def _shown(text: str) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _newer_than(t: Tree, product: str, sources: Iterable[str]) -> str:
    """Why ``product`` is not up to date with ``sources`` ('' when it is)."""
    st = t.stat(product)
    if st is None:
        return f"no {product}"
    for source in sources:
        src = t.stat(source)
        if src is not None and src.st_mtime_ns > st.st_mtime_ns:
            return f"{source} is newer than {product}"
    return ""


def _dir_and_files(t: Tree, dirs: Iterable[str]) -> Iterator[str]:
    for d in dirs:
        if t.is_dir(d):
            yield d
            yield from (f"{d}/{name}" for name in sorted(t.listdir(d)))


# -- ldconfig ---------------------------------------------------------------------------------


def _ldconfig_stale(t: Tree) -> str:
    cache = t.stat("/etc/ld.so.cache")
    if cache is None or cache.st_size == 0:
        return "/etc/ld.so.cache is missing or empty"
    confs, dirs = _ld_so_conf(t, "/etc/ld.so.conf", depth=0)
    if reason := _newer_than(t, "/etc/ld.so.cache", confs):
        return reason
    for d in [*LIB_DIRS, *dirs]:
        if t.is_dir(d):
            hwcaps = f"{d}/glibc-hwcaps"
            subdirs = (
                [f"{hwcaps}/{n}" for n in sorted(t.listdir(hwcaps))] if t.is_dir(hwcaps) else []
            )
            for directory in [d, *subdirs]:
                if reason := _libraries_changed(t, directory, cache.st_mtime_ns):
                    return reason
    return ""


def _libraries_changed(t: Tree, directory: str, since: int) -> str:
    """Why ldconfig would read ``directory`` differently than when it wrote its cache at
    ``since`` ('' if not). The directory's mtime moves with every entry added, renamed or
    removed; after ``since`` only entries ldconfig skips may have been added (directories,
    names without ".so": glibc elf/ldconfig.c search_dir), and the last change must be one of
    those additions (a later change, such as a removal or a package's file renamed into place
    with its old mtime, leaves the directory newer than every new entry). Only mtimes, which a
    copy of the tree keeps: a build from the cached tree decides as the first build did."""
    st = t.stat(directory)
    if st is None or st.st_mtime_ns <= since:
        return ""
    last_added = 0
    for name in t.listdir(directory):
        entry = t.lstat(f"{directory}/{name}")
        if entry is None or entry.st_mtime_ns <= since:
            continue
        if ".so" in name and not stat.S_ISDIR(entry.st_mode):
            return f"{directory}/{name} is newer than /etc/ld.so.cache"
        last_added = max(last_added, entry.st_mtime_ns)
    if last_added < st.st_mtime_ns:
        return f"{directory} changed after /etc/ld.so.cache was written"
    return ""


def _ld_so_conf(t: Tree, path: str, depth: int) -> tuple[list[str], list[str]]:
    """(the configuration files read, the directories named) from ``path``, as ldconfig
    reads it: ``include`` globs (relative to the including file's directory), then one
    directory per line (ld.so.conf(5), glibc elf/ldconfig.c parse_conf)."""
    if depth > 8 or not t.is_file(path):
        return [], []
    confs, dirs = [path], []
    for raw in t.read_text(path).splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8].isspace():
            for pattern in line[7:].split():
                if not pattern.startswith("/"):
                    pattern = f"{path.rsplit('/', 1)[0]}/{pattern}"
                for match in _glob(t, pattern):
                    c, d = _ld_so_conf(t, match, depth + 1)
                    confs += c
                    dirs += d
        elif line.startswith("hwcap"):
            continue
        else:
            dirs += [d for d in line.replace(",", " ").split() if d.startswith("/")]
    return confs, dirs


def _glob(t: Tree, pattern: str) -> list[str]:
    """Files of the tree matching ``pattern``, wildcards in the last component only (the form
    ld.so.conf's includes take)."""
    head, _, last = pattern.rpartition("/")
    if any(c in head for c in "*?["):
        return []
    directory = head or "/"
    if not t.is_dir(directory):
        return []
    return [f"{head}/{n}" for n in sorted(t.listdir(directory)) if fnmatch.fnmatchcase(n, last)]


# -- sysusers ---------------------------------------------------------------------------------


def _sysusers_missing(t: Tree) -> str:
    users, groups = _table(t, "passwd"), _table(t, "group")
    gids = {fields[2]: name for name, fields in groups.items() if len(fields) > 2}
    for path, text in _sysusers_files(t):
        for kind, name, arg in sysusers_entries(text):
            if "%" in name or "%" in arg:
                return f"{path}: specifiers in {kind} {name} {arg}"
            wanted = ""
            if kind == "u":
                group = arg.split(":", 1)[1] if ":" in arg else name
                if name not in users:
                    wanted = f"user {name}"
                elif not group.isdigit() and not group.startswith("/") and group not in groups:
                    wanted = f"group {group}"
            elif kind == "g" and name not in groups:
                wanted = f"group {name}"
            elif kind == "m" and not _member(users, groups, gids, name, arg):
                wanted = f"user {name} in group {arg}"
            if wanted:
                return f"{wanted} of {path} is not in /etc/passwd or /etc/group yet"
    return ""


def _sysusers_files(t: Tree) -> Iterator[tuple[str, str]]:
    """(file, text) of every sysusers.d file in effect: a file name in an earlier directory
    hides the same name in a later one; a file linked to /dev/null is masked."""
    chosen: dict[str, str] = {}
    for d in SYSUSERS_DIRS:
        if t.is_dir(d):
            for name in t.listdir(d):
                if name.endswith(".conf"):
                    chosen.setdefault(name, f"{d}/{name}")
    for name in sorted(chosen):
        path = chosen[name]
        if t.readlink(path) == "/dev/null" or not t.is_file(path):
            continue
        yield path, t.read_text(path)


def _table(t: Tree, name: str) -> dict[str, list[str]]:
    rows = (ln.split(":") for ln in t.read_text(f"/etc/{name}", default="").splitlines())
    return {fields[0]: fields for fields in rows if fields and fields[0]}


def _member(
    users: dict[str, list[str]],
    groups: dict[str, list[str]],
    gids: dict[str, str],
    user: str,
    group: str,
) -> bool:
    row = groups.get(group)
    if user not in users or row is None:
        return False
    members = row[3].split(",") if len(row) > 3 else []
    primary = users[user][3] if len(users[user]) > 3 else ""
    return user in members or gids.get(primary) == group


# -- hwdb -------------------------------------------------------------------------------------


def _hwdb_stale(t: Tree) -> str:
    """systemd-hwdb-update.service writes /etc/udev/hwdb.bin when there is one already, when
    /etc/udev/hwdb.d is not empty or when /usr has no hwdb.bin; what it would write must be
    there and newer than the sources."""
    sources = list(_dir_and_files(t, HWDB_DIRS))
    if not sources:
        return ""
    etc_sources = t.is_dir("/etc/udev/hwdb.d") and bool(t.listdir("/etc/udev/hwdb.d"))
    if t.exists("/etc/udev/hwdb.bin") or etc_sources or not t.exists("/usr/lib/udev/hwdb.bin"):
        return _newer_than(t, "/etc/udev/hwdb.bin", sources)
    return _newer_than(t, "/usr/lib/udev/hwdb.bin", sources)
