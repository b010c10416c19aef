"""Stage cache keys: each stage misses exactly when something it reads changed."""

import os
from pathlib import Path

import pytest

from composer.build import keys as stage_keys
from composer.build.reproducible import FALLBACK_EPOCH, clamp_mtimes, source_date_epoch
from composer.core.hashing import tree_digest
from composer.plan.load import parse
from composer.plan.plan import Plan, make_plan

SECRET = b"k" * 32

BASE = """
name = "k"
distro = "debian-13"
[[packages]]
name = "openssh-server"
[customizations]
hostname = "one"
"""


def plan(extra: str = "", base: str = BASE) -> Plan:
    return make_plan(parse(base + extra))


def keys(p: Plan, index: str = "i1", repo: Path | None = None) -> tuple[str, str, str]:
    root = stage_keys.root_key(
        p, index=index, pins={}, local_repos=[repo] if repo else [], tools="t", epoch=1
    )
    uki = stage_keys.uki_key(p, root=root, usr_type="u", tools="t")
    return root, uki, stage_keys.image_key(p, root=root, uki=uki, keys=None, secret=SECRET)


def test_same_plan_same_keys() -> None:
    assert keys(plan()) == keys(plan())


def test_hostname_change_misses_only_the_image() -> None:
    a, b = keys(plan()), keys(plan(base=BASE.replace('"one"', '"two"')))
    assert a[0] == b[0] and a[1] == b[1] and a[2] != b[2]


def test_kernel_append_misses_uki_and_image_not_root() -> None:
    a, b = keys(plan()), keys(plan('[customizations.kernel]\nappend = "quiet"\n'))
    assert a[0] == b[0] and a[1] != b[1] and a[2] != b[2]


def test_package_or_archive_change_misses_everything() -> None:
    a = keys(plan())
    b = keys(plan('[[packages]]\nname = "less"\n'))
    c = keys(plan(), index="i2")
    for other in (b, c):
        assert all(x != y for x, y in zip(a, other, strict=True))


def test_local_repository_content_is_in_the_root_key(tmp_path: Path) -> None:
    (tmp_path / "uki-virt_1_amd64.deb").write_bytes(b"one")
    a = keys(plan(), repo=tmp_path)
    (tmp_path / "uki-virt_1_amd64.deb").write_bytes(b"two")
    assert keys(plan(), repo=tmp_path)[0] != a[0]


def test_password_change_misses_the_image() -> None:
    user = '[[customizations.user]]\nname = "a"\npassword = "{}"\n'
    a, b = keys(plan(user.format("x"))), keys(plan(user.format("y")))
    assert a[2] != b[2]


def test_secure_boot_keys_are_in_the_image_key(tmp_path: Path) -> None:
    p = plan()
    (tmp_path / "db.crt").write_text("one")
    a = stage_keys.image_key(p, root="r", uki="u", keys=tmp_path, secret=SECRET)
    (tmp_path / "db.crt").write_text("two")
    assert stage_keys.image_key(p, root="r", uki="u", keys=tmp_path, secret=SECRET) != a


def test_tree_digest_sees_modes_and_links(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    a = tree_digest(tmp_path)
    (tmp_path / "f").chmod(0o600)
    b = tree_digest(tmp_path)
    (tmp_path / "l").symlink_to("f")
    assert len({a, b, tree_digest(tmp_path)}) == 3


def test_index_urls() -> None:
    assert stage_keys.index_urls(plan()) == ["http://deb.debian.org/debian/dists/trixie/InRelease"]


def test_unreadable_index_turns_the_cache_off(tmp_path: Path) -> None:
    from composer.rootfs.versions import IndexSignatureError, archive_index_digest

    digest, why = archive_index_digest([(tmp_path / "nope").as_uri()])
    assert digest is None and "nope" in why
    (tmp_path / "repomd.xml").write_text("<repomd/>\n")
    digest, why = archive_index_digest([(tmp_path / "repomd.xml").as_uri()])
    assert digest is not None and why == ""
    (tmp_path / "InRelease").write_text("Date: Sat, 01 Nov 2025 10:00:00 UTC\n")
    with pytest.raises(IndexSignatureError):  # an unsigned InRelease decides nothing
        archive_index_digest([(tmp_path / "InRelease").as_uri()])


def test_source_date_epoch_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch(plan()) == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(Exception, match="SOURCE_DATE_EPOCH"):
        source_date_epoch(plan())


def test_source_date_epoch_from_the_archive_date(monkeypatch: pytest.MonkeyPatch) -> None:
    from composer.build import reproducible

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setattr(reproducible, "release_epoch", lambda mirror, suite: 1761991200)
    assert source_date_epoch(plan()) == 1761991200
    monkeypatch.setattr(reproducible, "release_epoch", lambda mirror, suite: None)
    assert source_date_epoch(plan()) == FALLBACK_EPOCH


def test_clamp_mtimes_only_lowers(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/new").write_text("x")
    (tmp_path / "old").write_text("y")
    os.utime(tmp_path / "old", (100, 100))
    (tmp_path / "link").symlink_to("missing")
    clamp_mtimes(tmp_path, 1000)
    assert (tmp_path / "d/new").stat().st_mtime == 1000
    assert (tmp_path / "old").stat().st_mtime == 100
    assert os.lstat(tmp_path / "link").st_mtime == 1000
    assert tmp_path.stat().st_mtime == 1000
