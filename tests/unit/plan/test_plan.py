import json
from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.core.units import MiB
from composer.plan.load import load, parse
from composer.plan.plan import make_plan

from ..hash_seeds import plan_json_across_processes

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "blueprints/debian-uki-sdboot.toml"


def test_root_partition_has_root_x86_64_type() -> None:
    plan = make_plan(load(DEFAULT))
    assert plan.partition("root").type_uuid == "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
    assert plan.partition("esp").type_uuid == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"


def test_plan_is_the_same_in_processes_with_different_hash_seeds() -> None:
    a = plan_json_across_processes(DEFAULT)
    assert a == make_plan(load(DEFAULT)).to_json()
    data = json.loads(a)
    uuids = {p["uuid"] for p in data["partitions"]} | {data["disk_guid"]}
    assert len(uuids) == 3


def test_seed_changes_every_uuid() -> None:
    a = make_plan(parse('name = "x"\n'))
    b = make_plan(parse('name = "x"\n[image]\nseed = "other"\n'))
    assert a.disk_guid != b.disk_guid
    assert {p.uuid for p in a.partitions}.isdisjoint({p.uuid for p in b.partitions})


def test_partitions_aligned_and_inside_disk() -> None:
    plan = make_plan(parse('name = "x"\n[image]\nsize = "3000 MB"\n'))
    end = 0
    for p in plan.partitions:
        assert p.start % MiB == 0 and p.size % MiB == 0
        assert p.start >= max(end, MiB)
        end = p.start + p.size
    assert end <= plan.disk_size - 33 * 512


def test_aarch64_root_type() -> None:
    plan = make_plan(parse('name = "x"\narchitecture = "aarch64"\n'))
    assert plan.partition("root").type_uuid == "b921b045-1df0-41c3-af44-4c6f280d3fae"


def test_cmdline_has_console_and_append_but_no_root() -> None:
    plan = make_plan(load(DEFAULT))
    assert plan.cmdline.startswith("console=tty0 console=ttyS0")
    assert "audit=0" in plan.cmdline
    assert "root=" not in plan.cmdline


def test_packages_include_kernel_and_blueprint() -> None:
    plan = make_plan(load(DEFAULT))
    assert "linux-image-amd64" in plan.packages and "openssh-server" in plan.packages
    assert len(plan.packages) == len(set(plan.packages))


def test_too_small_disk_is_an_error() -> None:
    with pytest.raises(BlueprintError) as info:
        make_plan(parse('name = "x"\n[image]\nsize = "300 MiB"\n'), "bp.toml")
    assert info.value.key == "image.size"
