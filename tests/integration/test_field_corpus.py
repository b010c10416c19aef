"""The corpus of real-world-shaped osbuild blueprints (tests/corpus) against the real archive
and a real build: every Debian blueprint `plan` accepts is resolved (what the archive decides:
package names and versions, units, users and groups) and accepted or refused with exactly the
keys its header names; the representative one is built and booted, and what osbuild users
expect of it is in the image (root's password and key set by usermod, wheel as sudo, lock
created, tzdata-legacy's zone, /var, a second swap and /var/lib/mysql mounted by fstab).

Cost: the resolution checks share one apt index and the package cache (about 10 s each once
the packages are cached); one build, one boot.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from unit.plan.test_load import FILES, expectations  # tests/ is on sys.path (pytest)

from composer.core import paths
from composer.core.errors import BlueprintError, KeyedProblems
from composer.image.read import read_ext4_file
from composer.plan.load import load
from composer.plan.plan import make_plan
from composer.rootfs.resolution import check

from .conftest import ModuleTmp, composer, manifest

pytestmark = pytest.mark.integration

RESOLVED = [p for p in FILES if "resolve" in expectations(p)]
FIELD = next(p for p in FILES if p.name == "field-debian-vm.toml")
TIMES: dict[str, float] = {}


@pytest.mark.parametrize("path", RESOLVED, ids=lambda p: p.name)
def test_the_archive_accepts_or_refuses_with_the_keys_named(path: Path) -> None:
    want = expectations(path)["resolve"]
    bp = load(path)
    plan = make_plan(bp)
    start = time.monotonic()
    try:
        found = check(plan, None, cache=paths.cache_dir())
    except KeyedProblems as exc:
        error = bp.error(list(exc.problems))
        assert want, str(error)
        assert {p.key for p in error.problems} == set(want[1:]), str(error)
        assert all(p.line for p in error.problems), str(error)
    else:
        assert not want, f"expected refusals of {want[1:]}"
        assert found is not None and found.packages > 100
    TIMES[f"resolve {path.name}"] = round(time.monotonic() - start, 1)


def test_plan_resolve_on_the_command_line_names_file_lines_and_keys() -> None:
    path = next(p for p in RESOLVED if p.name == "rhel-docs-customizations.toml")
    proc = composer("plan", "--resolve", str(path), check=False)
    assert proc.returncode == 2 and not proc.stdout
    assert f"{path}:11: packages[0].version: tmux: no version matches '2.9a'" in proc.stderr
    assert "customizations.services.enabled[2]: httpd.service: no package" in proc.stderr
    assert "apache2.service" in proc.stderr


@pytest.fixture(scope="module")
def field_image(module_tmp: ModuleTmp) -> Path:
    out = module_tmp.mktemp("field")
    start = time.monotonic()
    composer("build", str(FIELD), "-o", str(out))
    TIMES["build field-debian-vm"] = round(time.monotonic() - start, 1)
    return out


def test_field_image_has_what_osbuild_users_expect(field_image: Path) -> None:
    m = manifest(field_image)
    raw = field_image / "field-debian-vm.raw"
    root = m["disk"]["partitions"][-1]["offset"]

    def read(path: str) -> str:
        return read_ext4_file(raw, root, path).decode()

    shadow = {ln.split(":")[0]: ln.split(":") for ln in read("/etc/shadow").splitlines()}
    assert shadow["root"][1].startswith("$6$dpscomposer$")  # usermod, not useradd
    assert shadow["ann"][1].startswith("$y$") and shadow["ann"][2] == "0"
    assert "root@field" in read("/root/.ssh/authorized_keys")
    groups = {ln.split(":")[0]: ln.split(":") for ln in read("/etc/group").splitlines()}
    assert "ann" in groups["sudo"][3].split(",") and "ann" in groups["lock"][3].split(",")
    assert int(groups["lock"][2]) < 1000 and "wheel" not in groups  # system group; mapped
    assert read("/etc/timezone") == "US/Eastern\n" and "tzdata-legacy" in m["packages"]
    assert "PermitRootLogin prohibit-password" in read(
        "/etc/ssh/sshd_config.d/50-dps-composer.conf"
    )
    fstab = read("/etc/fstab")
    parts = {(p["designator"], p["number"]): p for p in m["disk"]["partitions"]}
    var = next(p for (d, _), p in parts.items() if d == "var")
    assert f"UUID={var['fs_uuid']}\t/var\text4" in fstab
    assert sum("\tswap\t" in ln for ln in fstab.splitlines()) == 2  # two swaps: both by fstab
    assert "\t/var/lib/mysql\t" in fstab
    assert "de_DE.UTF-8 UTF-8" in read("/etc/locale.gen")
    assert read("/etc/systemd/system/field-hello.service").startswith("[Unit]")


def test_field_image_boots_with_every_mount_in_place(field_image: Path, tmp_path: Path) -> None:
    verdict_file = tmp_path / "verdict.json"
    start = time.monotonic()
    proc = composer(
        "boot", str(field_image / "field-debian-vm.qcow2"), "--timeout", "1200",
        "--json-file", str(verdict_file), check=False,
    )  # fmt: skip
    TIMES["boot field-debian-vm"] = round(time.monotonic() - start, 1)
    print(f"times: {TIMES}")
    verdict = json.loads(verdict_file.read_text())
    checks = {c["name"]: c for c in verdict["checks"]}
    assert proc.returncode == 0, json.dumps(verdict["checks"], indent=1)
    detail = checks["dps-mounts"]["detail"]
    assert "/var " in detail and "by fstab" in detail, detail
    assert "/var/lib/mysql " in detail, detail
    assert detail.count("swap /dev/") == 2 and "swap by discovery" not in detail, detail
    var = next(p for p in manifest(field_image)["disk"]["partitions"] if p["designator"] == "var")
    mounts = {mt["target"]: mt for mt in verdict["guest"]["mounts"]}
    assert mounts["/var"]["parttype"] == var["type_uuid"]  # still DPS's var type, by fstab


def test_refused_blueprints_never_reach_a_build(tmp_path: Path) -> None:
    """`build` refuses what `plan` refuses, before any stage runs."""
    path = next(p for p in FILES if p.name == "field-wrong-layout.toml")
    proc = composer("build", str(path), "-o", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "part_uuid" in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
    with pytest.raises(BlueprintError):
        make_plan(load(path))
