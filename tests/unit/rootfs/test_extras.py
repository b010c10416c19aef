"""Files, directories and locale files written into a tree (temp directories only)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from composer.blueprint.customizations import Locale
from composer.blueprint.files import Directory, File
from composer.core.errors import ComposerError
from composer.rootfs.extras import make_directory, set_locale, write_file

ADMIN_UID, WIDGET_GID, OTHER_UID, OTHER_GID = 4242, 4343, 4244, 4345  # neither root nor our own


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        f"root:x:0:0::/root:/bin/sh\nadmin:x:{ADMIN_UID}:100::/home/admin:/bin/sh\n"
    )
    (tmp_path / "etc/group").write_text(f"root:x:0:\nwidget:x:{WIDGET_GID}:\n")
    return tmp_path


def test_directory_and_file_with_owner_and_mode(tree: Path) -> None:
    """Owners that are neither the test's user nor root: only a chown that ran (with the
    ids the tree's own passwd and group name) gives them."""
    if os.getuid() != 0:
        pytest.skip("chown to another user needs root")
    make_directory(
        tree,
        Directory(
            path="/etc/app/conf.d", mode="0750", user="admin", group="widget", ensure_parents=True
        ),
    )
    d = tree / "etc/app/conf.d"
    assert stat.S_IMODE(d.stat().st_mode) == 0o750
    assert (d.stat().st_uid, d.stat().st_gid) == (ADMIN_UID, WIDGET_GID)
    write_file(
        tree,
        File(
            path="/etc/app/conf.d/a.conf", mode="600", data="x=1\n", user=OTHER_UID, group=OTHER_GID
        ),
    )
    f = d / "a.conf"
    assert f.read_text() == "x=1\n" and stat.S_IMODE(f.stat().st_mode) == 0o600
    assert (f.stat().st_uid, f.stat().st_gid) == (OTHER_UID, OTHER_GID)


def test_unknown_owner_and_missing_parent_are_errors(tree: Path) -> None:
    with pytest.raises(ComposerError, match="no 'nobody'"):
        write_file(tree, File(path="/etc/x", user="nobody"))
    with pytest.raises(ComposerError, match="ensure_parents"):
        make_directory(tree, Directory(path="/srv/a/b"))


def test_locale_files_without_generation(tree: Path, tmp_path: Path) -> None:
    (tree / "etc/default").mkdir()
    (tree / "etc/default/keyboard").write_text('XKBLAYOUT="de"\nKEYMAP=us\n')
    (tree / "etc/vconsole.conf").symlink_to("default/keyboard")  # as Debian has it
    (tree / "etc/default/locale").symlink_to("../locale.conf")
    set_locale(tree, Locale(languages=("C.UTF-8",), keyboard="de-latin1"))
    assert (tree / "etc/locale.conf").read_text() == "LANG=C.UTF-8\n"
    assert (tree / "etc/default/keyboard").read_text() == 'XKBLAYOUT="de"\nKEYMAP=de-latin1\n'
    assert (tree / "etc/vconsole.conf").is_symlink()
    assert not (tree / "etc/locale.gen").exists()
    with pytest.raises(ComposerError, match="SUPPORTED"):
        set_locale(tree, Locale(languages=("xx_YY.UTF-8",)))
