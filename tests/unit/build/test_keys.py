"""Stage cache keys: derived from what each stage declares it reads, each stage misses exactly
when something it reads (or a stage it comes after) changed."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from composer.build import keys
from composer.build.facts import FACTS, Facts
from composer.build.reproducible import FALLBACK_EPOCH, clamp_mtimes, source_date_epoch
from composer.build.stages.sequence import STAGES
from composer.build.stages.stage import Stage
from composer.core.hashing import tree_digest
from composer.plan.load import parse
from composer.plan.plan import Plan, make_plan
from composer.rootfs.versions import KEYRING

from ..hash_seeds import assert_same_across_processes
from ..rootfs.test_versions import DATA, SUITE, mirror

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


def facts(**changes: object) -> Facts:
    base = Facts(
        composer="c",
        tools="t",
        local_repos=(),
        pins={},
        index="i1",
        epoch=1,
        secureboot_keys=None,
        secret=SECRET,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def derived(p: Plan, **changes: object) -> tuple[str, str, str]:
    """The keys of the three cached stages: root tree, UKI, whole image."""
    k = keys.derive(p, facts(**changes), STAGES)
    return k["root"], k["uki"], k["image"]


def test_same_plan_same_keys() -> None:
    assert derived(plan()) == derived(plan())


SEEDED_BLUEPRINT = (
    BASE
    + """
[[packages]]
name = "less"
[[packages]]
name = "file"
[[customizations.group]]
name = "staff"
[[customizations.user]]
name = "admin"
groups = ["wheel", "sudo", "adm", "staff"]
[customizations.services]
enabled = ["ssh", "systemd-networkd", "systemd-resolved"]
"""
)


def test_keys_are_the_same_in_processes_with_different_hash_seeds() -> None:
    """Keys are reused by later runs: sets (packages, groups, pins) must not leak their
    per-process order into them."""
    code = f"""
import json
from composer.build import keys
from composer.build.facts import Facts
from composer.build.stages.sequence import STAGES
from composer.plan.load import parse
from composer.plan.plan import make_plan
pins = {{"less": "1", "file": "2", "openssh-server": "3"}}
facts = Facts("c", "t", ("r1", "r2"), pins, "i", 1, None, b"k" * 32)
plan = make_plan(parse({SEEDED_BLUEPRINT!r}))
print(json.dumps(keys.derive(plan, facts, STAGES), sort_keys=True))
"""
    printed = assert_same_across_processes(code)
    assert set(json.loads(printed)) >= {"root", "uki", "image"}


def test_hostname_change_misses_only_the_image() -> None:
    a, b = derived(plan()), derived(plan(base=BASE.replace('"one"', '"two"')))
    assert a[0] == b[0] and a[1] == b[1] and a[2] != b[2]


def test_kernel_append_misses_uki_and_image_not_root() -> None:
    a, b = derived(plan()), derived(plan('[customizations.kernel]\nappend = "quiet"\n'))
    assert a[0] == b[0] and a[1] != b[1] and a[2] != b[2]


def test_package_or_archive_change_misses_everything() -> None:
    a = derived(plan())
    b = derived(plan('[[packages]]\nname = "less"\n'))
    c = derived(plan(), index="i2")
    for other in (b, c):
        assert all(x != y for x, y in zip(a, other, strict=True))


def test_package_order_changes_nothing() -> None:
    two = '[[packages]]\nname = "less"\n[[packages]]\nname = "file"\n'
    swapped = '[[packages]]\nname = "file"\n[[packages]]\nname = "less"\n'
    assert derived(plan(two)) == derived(plan(swapped))


def test_local_repository_content_is_in_the_uki_key_not_the_root_key(tmp_path: Path) -> None:
    """The root tree is installed without uki-virt (beside its build); the uki stage installs
    it into the tree, so its key and the image's cover the repository's content."""
    (tmp_path / "uki-virt_1_amd64.deb").write_bytes(b"one")
    a = derived(plan(), local_repos=keys.repo_digests([tmp_path]))
    (tmp_path / "uki-virt_1_amd64.deb").write_bytes(b"two")
    b = derived(plan(), local_repos=keys.repo_digests([tmp_path]))
    assert b[0] == a[0] and b[1] != a[1] and b[2] != a[2]


def test_password_change_misses_the_image() -> None:
    user = '[[customizations.user]]\nname = "a"\npassword = "{}"\n'
    a, b = derived(plan(user.format("x"))), derived(plan(user.format("y")))
    assert a[2] != b[2]


def test_secure_boot_keys_are_in_the_image_key(tmp_path: Path) -> None:
    p = plan()
    (tmp_path / "db.crt").write_text("one")
    a = derived(p, secureboot_keys=tree_digest(tmp_path))
    (tmp_path / "db.crt").write_text("two")
    assert derived(p, secureboot_keys=tree_digest(tmp_path))[2] != a[2]


# --- the declarations ----------------------------------------------------------------------


def depends_on(stage: Stage) -> set[str]:
    """The stage and every stage it comes after, transitively."""
    found = {stage.name}
    for name in stage.after:
        found |= depends_on(next(s for s in STAGES if s.name == name))
    return found


def reads(stage: Stage, name: str) -> bool:
    """Whether the stage declares ``name`` or a part of it, or ``name`` is part of one."""
    return any(
        i == name or i.startswith(name + ".") or name.startswith(i + ".") for i in stage.inputs
    )


def expected_misses(name: str) -> set[str]:
    """The stages whose keys must change when the input ``name`` does: those that read it
    and every stage after them."""
    readers = {s.name for s in STAGES if reads(s, name)}
    return {s.name for s in STAGES if depends_on(s) & readers}


# a plan that sets every field, so that each can be changed
FULL = """
name = "full"
version = "1.2.3"
distro = "debian-13"
[[packages]]
name = "openssh-server"
[customizations]
hostname = "h"
[customizations.kernel]
append = "quiet"
[[customizations.user]]
name = "u"
password = "pw"
[image]
machine_id = "0123456789abcdef0123456789abcdef"
formats = ["raw", "qcow2"]
[secureboot]
sign = true
[measured]
sign_policy = true
sealed = ["srv"]
keys = "keys"
"""


def changed(p: Plan, field: str) -> tuple[Plan, str]:
    """``p`` with the value of the plan input ``field`` ("plan.X" or "plan.X.Y") changed, and
    the part of the plan that changed."""
    head, *rest = field.removeprefix("plan.").split(".")
    value = getattr(p, head)
    if rest == ["repositories"]:
        repo = {"id": "r", "baseurls": ("https://example.org/r",), "gpgcheck": False}
        from composer.blueprint.repositories import Repository

        new = value.model_copy(update={"repositories": (Repository.model_validate(repo),)})
    elif head == "customizations":
        new = value.model_copy(update={"hostname": "other"})
        field = "plan.customizations.hostname"
    elif head == "partitions":
        new = (dataclasses.replace(value[0], label="other"), *value[1:])
    elif isinstance(value, bool):
        new = not value
    elif isinstance(value, int | float):
        new = value + 1
    elif isinstance(value, str):
        new = value + "x"
    elif isinstance(value, tuple):
        new = (*value, value[0] if value and not isinstance(value[0], str) else "x")
    elif value is None:
        new = "x"
    else:
        raise AssertionError(f"no way to change {field} ({type(value).__name__})")
    assert new != value, field
    return dataclasses.replace(p, **{head: new}), field


PLAN_INPUTS = sorted({i for s in STAGES for i in s.inputs if i.startswith("plan.")})


@pytest.mark.parametrize("field", PLAN_INPUTS)
def test_a_changed_plan_input_misses_exactly_the_stages_that_depend_on_it(field: str) -> None:
    p = make_plan(parse(FULL))
    other, part = changed(p, field)
    before = keys.derive(p, facts(), STAGES)
    after = keys.derive(other, facts(), STAGES)
    missed = {name for name in before if before[name] != after[name]}
    assert missed == expected_misses(part) and missed


FACT_CHANGES = {
    "composer": "c2",
    "tools": "t2",
    "local_repos": ("r",),
    "pins": {"openssh-server": "1"},
    "index": "i2",
    "epoch": 2,
    "secureboot_keys": "k",
    "secret": b"s" * 32,
    "pcr_key": "f2",
}


@pytest.mark.parametrize("fact", sorted(FACTS))
def test_a_changed_fact_misses_exactly_the_stages_that_depend_on_it(fact: str) -> None:
    p = plan()
    before = keys.derive(p, facts(), STAGES)
    after = keys.derive(p, facts(**{fact: FACT_CHANGES[fact]}), STAGES)
    missed = {name for name in before if before[name] != after[name]}
    want = set(before) if fact == "composer" else expected_misses(fact)
    assert missed == want and missed


# Plan fields that no stage reads, and why
NOT_BUILD_INPUTS = {
    "description": "free text: in no output file",
    "notes": "what the plan decided, in words: shown by `plan`",
    "package_origins": "which key asked for a package: for error messages",
}


def test_every_plan_field_is_read_by_a_stage_or_said_not_to_be() -> None:
    fields = {f.name for f in dataclasses.fields(Plan)}
    declared = {i.removeprefix("plan.").split(".")[0] for i in PLAN_INPUTS}
    assert declared.isdisjoint(NOT_BUILD_INPUTS)
    assert fields == declared | set(NOT_BUILD_INPUTS)


def test_declarations_name_known_stages_and_facts_found_before_they_are_read() -> None:
    names = [s.name for s in STAGES]
    assert len(set(names)) == len(names)
    for i, stage in enumerate(STAGES):
        assert set(stage.after) <= set(names[:i]), stage.name  # only earlier stages
        for name in stage.inputs:
            if not name.startswith("plan."):
                assert name in FACTS, name
                producer = FACTS[name][0]
                assert producer == "" or names.index(producer) < i, (stage.name, name)


def test_every_stage_image_depends_on_the_tree_and_uki() -> None:
    """The whole image's entry (the last stage) covers every stage that makes it."""
    last = STAGES[-1]
    assert {"root", "uki", "customize", "esp", "filesystems", "disk"} <= depends_on(last)


def test_index_urls() -> None:
    assert keys.index_urls(plan()) == ["http://deb.debian.org/debian/dists/trixie/InRelease"]


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


@pytest.mark.skipif(
    shutil.which("gpgv") is None or not Path(KEYRING).is_file(),
    reason="needs gpgv and debian-archive-keyring",
)
def test_source_date_epoch_from_the_signed_archive_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Date: of a real, signed InRelease of the Debian archive (tests/data, served from a
    file:// mirror), and the fixed date where the suite has no InRelease."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    served = dataclasses.replace(plan(), mirror=mirror(tmp_path, DATA.read_bytes()), suite=SUITE)
    assert source_date_epoch(served) == 1796091214  # Date: Tue, 01 Dec 2026 02:13:34 UTC
    missing = dataclasses.replace(served, suite="no-such-suite")
    assert source_date_epoch(missing) == FALLBACK_EPOCH


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


def test_before_uki_virt_ends_only_the_keys_that_do_not_read_its_repository_are_known() -> None:
    """resolve may end while uki-virt still runs: package-check's and root's keys are known
    then (they start alongside), the uki stage's and every key after it are not, and none
    changes later."""
    early = keys.derive(plan(), facts(local_repos=None), STAGES)
    full = keys.derive(plan(), facts(), STAGES)
    assert {"tools-tree", "uki-virt", "resolve", "package-check", "root"} <= set(early)
    assert not {"uki", "customize", "image"} & set(early)
    assert all(full[name] == key for name, key in early.items())
