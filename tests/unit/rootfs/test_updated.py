"""/etc/.updated and /var/.updated: written only with evidence from the tree."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from composer.rootfs.updated import mark_updated

OLD = 1_700_000_000  # the sources' mtime (as a package's files have)
EPOCH = 1_700_000_900  # SOURCE_DATE_EPOCH


def _put(root: Path, path: str, text: str = "", when: float = OLD) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    os.utime(p, (when, when))
    return p


def _age(root: Path, *dirs: str, when: float = OLD) -> None:
    for d in dirs:
        os.utime(root / d.lstrip("/"), (when, when))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tree as a package manager's triggers leave it: every product newer than its sources."""
    r = tmp_path
    _put(r, "/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
    _put(r, "/etc/ld.so.conf.d/arch.conf", "# multiarch\n/usr/lib/x86_64-linux-gnu\n")
    _put(r, "/usr/lib/x86_64-linux-gnu/libc.so.6")
    _put(r, "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libz.so.1")
    _put(r, "/etc/ld.so.cache", "glibc-ld.so.cache1.1")
    _put(r, "/usr/lib/sysusers.d/basic.conf", 'u root 0 "Super User" /root\ng adm 4\nm root adm\n')
    _put(r, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    _put(r, "/etc/group", "root:x:0:\nadm:x:4:root\n")
    _put(r, "/usr/lib/udev/hwdb.d/20-pci.hwdb")
    _put(r, "/usr/lib/udev/hwdb.bin", "KSLPHHRH")
    _put(r, "/usr/lib/systemd/catalog/systemd.catalog")
    _put(r, "/var/lib/systemd/catalog/database", "RHHKCSLP")
    _age(r, "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3", "/usr/lib/x86_64-linux-gnu")
    _age(r, "/usr/lib/x86_64-linux-gnu/glibc-hwcaps", "/usr/lib/udev/hwdb.d")
    _age(r, "/usr/lib/systemd/catalog", "/usr/lib/sysusers.d", "/usr/lib/udev")
    _age(r, "/usr/lib/systemd", "/usr/lib", "/etc/ld.so.conf.d")
    # what the updaters made, after every source (ctimes are the real clock's)
    made = max(p.lstat().st_ctime for p in r.rglob("*")) + 1
    for product in ("etc/ld.so.cache", "usr/lib/udev/hwdb.bin", "var/lib/systemd/catalog/database"):
        os.utime(r / product, (made, made))
    return r


def _made(root: Path, product: str) -> float:
    return (root / product).stat().st_mtime


def _written_before(root: Path, product: str, path: str) -> None:
    """``product`` as written just before ``path`` appeared."""
    when = (root / path.lstrip("/")).lstat().st_ctime - 1
    os.utime(root / product, (when, when))


def test_a_tree_the_triggers_left_current_gets_both_stamps_as_old_as_usr(tree: Path) -> None:
    stamps = mark_updated(tree, EPOCH)
    assert stamps.written == ("/etc/.updated", "/var/.updated") and not stamps.missing
    for stamp in ("etc/.updated", "var/.updated"):
        # as old as /usr: ConditionNeedsUpdate= is false (systemd condition.c, needs_update);
        # at SOURCE_DATE_EPOCH, as every inode of the file systems: reproducible
        nsec = EPOCH * 10**9
        assert (tree / stamp).stat().st_mtime_ns == (tree / "usr").stat().st_mtime_ns == nsec
        assert (tree / stamp).read_text().endswith(f"\nTIMESTAMP_NSEC={nsec}\n")


@pytest.mark.parametrize(
    ("mtime", "reason"),
    [
        ("now", "/usr/lib/x86_64-linux-gnu/libnew.so.1 is newer than /etc/ld.so.cache"),
        # a package's file renamed into place keeps the package's mtime: the directory tells
        ("old", "/usr/lib/x86_64-linux-gnu changed after /etc/ld.so.cache was written"),
    ],
)
def test_a_library_added_after_ldconfig_keeps_ldconfig_at_first_boot(
    tree: Path, mtime: str, reason: str
) -> None:
    lib = "/usr/lib/x86_64-linux-gnu/libnew.so.1"
    _put(tree, lib, when=time.time() if mtime == "now" else OLD)
    _written_before(tree, "etc/ld.so.cache", lib)
    stamps = mark_updated(tree, EPOCH)
    assert stamps.written == ("/var/.updated",)
    assert not (tree / "etc/.updated").exists()
    assert dict(stamps.missing)["/etc/.updated"] == reason


def test_a_directory_ldconfig_skips_does_not_count_but_a_later_removal_does(tree: Path) -> None:
    """The build's own /usr/lib/repart.d: /usr/lib changes, no library does."""
    _put(tree, "/usr/lib/repart.d/50-root.conf", "[Partition]\nType=root\n")
    _written_before(tree, "etc/ld.so.cache", "/usr/lib/repart.d")
    assert "/etc/.updated" in mark_updated(tree, EPOCH).written
    later = (tree / "usr/lib/repart.d").lstat().st_ctime + 1  # an entry removed after it
    os.utime(tree / "usr/lib", (later, later))
    reason = dict(mark_updated(tree, EPOCH).missing)["/etc/.updated"]
    assert reason == "/usr/lib changed after /etc/ld.so.cache was written"


def test_an_included_conf_file_and_an_empty_cache_count(tree: Path) -> None:
    _put(
        tree, "/etc/ld.so.conf.d/local.conf", "/opt/lib\n", when=_made(tree, "etc/ld.so.cache") + 1
    )
    assert "local.conf is newer" in dict(mark_updated(tree, EPOCH).missing)["/etc/.updated"]
    _put(tree, "/etc/ld.so.cache", "")
    assert "missing or empty" in dict(mark_updated(tree, EPOCH).missing)["/etc/.updated"]


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        ("u svc - 'A service'", "user svc"),
        ("u root 0:wheel", "group wheel"),
        ("g render -", "group render"),
        ("m root render", "user root in group render"),
        ("u %a-user -", "specifiers"),
    ],
)
def test_a_sysusers_entry_not_in_passwd_or_group_keeps_sysusers_at_first_boot(
    tree: Path, line: str, wanted: str
) -> None:
    _put(tree, "/etc/sysusers.d/extra.conf", f"# added by hand\n{line}\n")
    stamps = mark_updated(tree, EPOCH)
    assert stamps.written == ("/var/.updated",)
    reason = dict(stamps.missing)["/etc/.updated"]
    assert wanted in reason and "/etc/sysusers.d/extra.conf" in reason


def test_sysusers_membership_by_primary_group_and_a_masked_file(tree: Path) -> None:
    _put(tree, "/usr/lib/sysusers.d/svc.conf", "u svc 990 - -\nm svc svc\ng nobody -\n")
    (tree / "etc/sysusers.d").mkdir()
    (tree / "etc/sysusers.d/svc.conf").symlink_to("/dev/null")  # masks the whole file
    assert "/etc/.updated" in mark_updated(tree, EPOCH).written
    (tree / "etc/sysusers.d/svc.conf").unlink()
    _put(tree, "/etc/passwd", "root:x:0:0::/root:/bin/sh\nsvc:x:990:990::/:/bin/false\n")
    _put(tree, "/etc/group", "root:x:0:\nadm:x:4:root\nsvc:x:990:\nnobody:x:65534:\n")
    (tree / "etc/.updated").unlink()
    assert "/etc/.updated" in mark_updated(tree, EPOCH).written


def test_an_etc_hwdb_file_needs_an_etc_hwdb_bin(tree: Path) -> None:
    _put(tree, "/etc/udev/hwdb.d/70-keyboard.hwdb", "evdev:name:*\n KEYBOARD_KEY_1=a\n")
    _age(tree, "/etc/udev/hwdb.d")
    assert "no /etc/udev/hwdb.bin" in dict(mark_updated(tree, EPOCH).missing)["/etc/.updated"]
    _put(tree, "/etc/udev/hwdb.bin", "KSLPHHRH", when=_made(tree, "usr/lib/udev/hwdb.bin"))
    assert "/etc/.updated" in mark_updated(tree, EPOCH).written


def test_a_catalog_file_newer_than_the_database_keeps_the_catalog_update(tree: Path) -> None:
    database = _made(tree, "var/lib/systemd/catalog/database")
    _put(tree, "/usr/lib/systemd/catalog/extra.catalog", when=database + 1)
    _age(tree, "/usr/lib/systemd/catalog")
    stamps = mark_updated(tree, EPOCH)
    assert stamps.written == ("/etc/.updated",)
    assert (
        "extra.catalog is newer than /var/lib/systemd/catalog/database"
        in dict(stamps.missing)["/var/.updated"]
    )


def test_links_in_the_tree_resolve_inside_it(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A hostile tree: an include and a library directory that lead out of it are read inside
    the tree, where they name nothing."""
    outside = tmp_path_factory.mktemp("host")
    _put(outside, "/evil.conf", "/usr/lib/x86_64-linux-gnu\n", when=EPOCH + 100)
    (tree / "etc/ld.so.conf.d/host.conf").symlink_to(outside / "evil.conf")
    os.utime(tree / "etc/ld.so.conf.d", (OLD, OLD))
    assert mark_updated(tree, EPOCH).written == ("/etc/.updated", "/var/.updated")


def test_a_copy_of_the_tree_decides_as_the_tree(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A build from the cached root tree works on a copy (cp -a: mtimes kept, ctimes new); it
    must write the same stamps as the build that made the tree, or the image would differ."""
    _put(tree, "/usr/lib/libold.so.1")  # a library straight in /usr/lib, from a package
    _age(tree, "/usr/lib")
    copy = tmp_path_factory.mktemp("cached") / "tree"
    subprocess.run(["cp", "-a", "--", str(tree), str(copy)], check=True)
    for root in (tree, copy):
        _put(root, "/usr/lib/repart.d/50-root.conf", "[Partition]\nType=root\n", when=time.time())
        assert mark_updated(root, EPOCH).written == ("/etc/.updated", "/var/.updated"), root


def test_names_from_the_image_reach_the_log_with_control_characters_escaped(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = _made(tree, "var/lib/systemd/catalog/database")
    _put(tree, "/usr/lib/systemd/catalog/\x1b[2Jx\n.catalog", when=database + 1)
    _age(tree, "/usr/lib/systemd/catalog")
    with caplog.at_level("INFO"):
        reason = dict(mark_updated(tree, EPOCH).missing)["/var/.updated"]
    assert "\\x1b[2Jx\\n.catalog is newer" in reason
    assert "\x1b" not in caplog.text and "\\x1b[2Jx" in caplog.text
