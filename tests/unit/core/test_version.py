"""The composer's version and git commit (composer/core/version.py), from a real git checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from composer import __version__
from composer.core import version


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def checkout(tmp_path: Path) -> Path:
    (tmp_path / "composer").mkdir()
    (tmp_path / "composer" / "__init__.py").write_text("")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "composer")
    git(tmp_path, "commit", "-qm", "x")
    return tmp_path


def test_a_checkout_has_its_head(tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    assert version.git_commit(repo) == git(repo, "rev-parse", "HEAD")


def test_a_changed_checkout_is_dirty(tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    (repo / "composer" / "__init__.py").write_text("x = 1\n")
    assert version.git_commit(repo) == git(repo, "rev-parse", "HEAD") + "-dirty"


def test_an_installed_package_has_no_commit(tmp_path: Path) -> None:
    (tmp_path / "composer").mkdir()
    assert version.git_commit(tmp_path) is None


def test_another_repository_is_not_ours(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")  # a git repository without the composer in it
    assert version.git_commit(tmp_path) is None


def test_printed_with_the_commit() -> None:
    v = version.ComposerVersion(__version__, "abc")
    assert str(v) == f"{__version__} (abc)" and v.to_dict() == {
        "version": __version__,
        "commit": "abc",
    }
    assert str(version.ComposerVersion(__version__, None)) == __version__
