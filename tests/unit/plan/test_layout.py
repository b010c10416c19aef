"""Partition layouts from [customizations.disk] / [[customizations.filesystem]] (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.core.units import GiB, MiB
from composer.plan.load import load, parse
from composer.plan.plan import make_plan
from composer.spec import dps

from ..hash_seeds import plan_json_across_processes

ROOT = Path(__file__).resolve().parents[3]
MID = "5f3c0de1a2b94c7e8d6f1a2b3c4d5e6f"


def bp(parts: str, extra: str = "") -> str:
    return f'name = "x"\n{extra}\n[customizations.disk]\n{parts}'


def part(**kw: object) -> str:
    lines = ["[[customizations.disk.partitions]]"]
    for k, v in kw.items():
        lines.append(
            f"{k} = {v!r}".replace("'", '"')
            if not isinstance(v, bool)
            else f"{k} = {str(v).lower()}"
        )
    return "\n".join(lines) + "\n"


def err(text: str) -> BlueprintError:
    with pytest.raises(BlueprintError) as info:
        parse(text, "bp.toml")
    return info.value


def test_default_layout_is_esp_then_growing_root() -> None:
    plan = make_plan(load(ROOT / "blueprints/debian-uki-sdboot.toml"))
    assert [p.designator for p in plan.partitions] == ["esp", "root"]
    assert plan.partition("root").flags == ("grow-fs",)
    assert plan.partition("root").attrs == 1 << 59
    assert plan.grow_root and "systemd-repart" in plan.packages
    assert plan.fstab == ()


@pytest.mark.parametrize(
    ("mountpoint", "designator"),
    [
        ("/", "root"),
        ("/usr", "usr"),
        ("/home", "home"),
        ("/srv", "srv"),
        ("/var/tmp", "tmp"),
        ("/boot", "xbootldr"),
        ("/efi", "esp"),
        ("/boot/efi", "esp"),
        ("/opt", "linux-generic"),
        ("/tmp", "linux-generic"),
    ],
)
def test_part_type_derived_from_mountpoint(mountpoint: str, designator: str) -> None:
    fs = "vfat" if designator in ("esp", "xbootldr") else "ext4"
    plan = make_plan(parse(bp(part(mountpoint=mountpoint, fs_type=fs, minsize="300 MiB"))))
    p = next(p for p in plan.partitions if p.designator == designator)
    assert p.type_uuid == str(dps.by_designator(designator, "x86-64").uuid)
    assert p.fstab == (designator == "linux-generic")
    if p.fstab:
        assert plan.fstab == (f"PARTUUID={p.uuid}\t{mountpoint}\text4\tdefaults\t0\t2",)
    else:
        assert plan.fstab == ()


def test_every_partition_kind_order_and_sizes() -> None:
    plan = make_plan(load(ROOT / "blueprints/debian-dps-layout.toml"))
    names = [p.designator for p in plan.partitions]
    assert names[:4] == ["esp", "xbootldr", "swap", "usr"] and names[-1] == "root"
    assert {"var", "tmp", "home", "srv", "linux-generic"} <= set(names)
    end = 0
    for p in plan.partitions:
        assert p.start % MiB == 0 and p.size % MiB == 0 and p.start >= max(end, MiB)
        end = p.start + p.size
    assert end == plan.disk_size - MiB  # root takes the rest, up to the backup GPT
    var = plan.partition("var")
    assert var.uuid == str(dps.var_partition_uuid(MID))
    assert plan.partition("usr").label == "debian_1.0.0"
    assert plan.partition("home").filesystem == "xfs"


def test_var_without_a_machine_id_is_mounted_by_fstab_uuid_as_osbuild_does() -> None:
    plan = make_plan(parse(bp(part(mountpoint="/var", fs_type="xfs", minsize="1 GiB"))))
    var = plan.partition("var")
    assert var.fstab and var.type_uuid == str(dps.by_designator("var").uuid)
    assert plan.fstab == (f"UUID={var.fs_uuid}\t/var\txfs\tdefaults\t0\t0",)
    assert any("/var: mounted by an fstab line" in n and "machine_id" in n for n in plan.notes)
    with_id = make_plan(parse(bp(part(mountpoint="/var"), f'[image]\nmachine_id = "{MID}"')))
    assert not with_id.partition("var").fstab and with_id.fstab == ()
    assert with_id.partition("var").uuid == str(dps.var_partition_uuid(MID))


def test_var_part_uuid_must_be_the_hmac() -> None:
    text = bp(part(mountpoint="/var", part_uuid="0" * 8 + "-0000-4000-8000-" + "1" * 12),
              f'[image]\nmachine_id = "{MID}"')  # fmt: skip
    e = err(text)
    assert e.key.endswith("part_uuid") and str(dps.var_partition_uuid(MID)) in e.message


def test_erofs_is_read_only_and_cannot_grow() -> None:
    plan = make_plan(parse(bp(part(mountpoint="/usr", fs_type="erofs"))))
    assert plan.partition("usr").flags == ("read-only",)
    assert plan.partition("usr").read_only
    e = err(bp(part(mountpoint="/usr", fs_type="erofs", flags=["grow-fs"])))
    assert e.key == "customizations.disk.partitions[0].flags"


def test_flags_are_checked_against_dps() -> None:
    plan = make_plan(parse(bp(part(mountpoint="/home", flags=["no-auto", "read_only"]))))
    home = plan.partition("home")
    assert home.flags == ("no-auto", "read-only") and home.fstab  # no-auto: an fstab line
    assert home.attrs == (1 << 63) | (1 << 60)
    assert err(bp(part(mountpoint="/", flags=["no-auto"]))).key.endswith("flags")
    assert "unknown DPS partition flag" in err(bp(part(mountpoint="/srv", flags=["fast"]))).message
    assert "no meaning" in err(bp(part(mountpoint="/opt", flags=["grow-fs"]))).message


def test_part_type_conflicting_with_mountpoint() -> None:
    e = err(bp(part(mountpoint="/home", part_type="srv")))
    assert e.key == "customizations.disk.partitions[0].part_type" and "/srv" in e.message
    e = err(bp(part(mountpoint="/", part_type="root-arm64")))
    assert "arm64" in e.message
    plan = make_plan(parse(bp(part(mountpoint="/home", part_type="linux-generic"))))
    assert plan.partition("linux-generic").fstab


def test_explicit_guid_and_labels() -> None:
    guid = "933ac7e1-2eb4-4f13-b844-0e14e2aef915"  # home
    plan = make_plan(
        parse(bp(part(mountpoint="/home", part_type=guid.upper(), part_label="data", label="HOME")))
    )
    home = plan.partition("home")
    assert (home.type_uuid, home.label, home.fs_label) == (guid, "data", "HOME")
    assert err(bp(part(mountpoint="/home", fs_type="xfs", label="x" * 13))).key.endswith("label")
    assert err(bp(part(mountpoint="/home", versioned_label=True))).key.endswith("versioned_label")


def test_filesystem_customization_and_disk_growth() -> None:
    text = 'name = "x"\n[[customizations.filesystem]]\nmountpoint = "/"\nminsize = "3 GiB"\n'
    text += '[[customizations.filesystem]]\nmountpoint = "/srv"\nminsize = 1073741824\n'
    plan = make_plan(parse(text))
    assert plan.partition("srv").size == GiB
    assert plan.disk_size >= 4 * GiB + 256 * MiB
    both = (
        text + '[customizations.disk]\n[[customizations.disk.partitions]]\nmountpoint = "/home"\n'
    )
    assert "not both" in err(both).message


def test_bad_partitions_named_by_key() -> None:
    assert err(bp(part(mountpoint="/etc"))).key == "customizations.disk.partitions[0].mountpoint"
    assert "LVM" in err(bp(part(type="lvm", mountpoint="/data"))).message
    assert "GPT" in err('name = "x"\n[customizations.disk]\ntype = "dos"\n').message
    assert err(bp(part(mountpoint="/boot", fs_type="ext4"))).key.endswith("fs_type")
    assert err(bp(part(mountpoint="/home", fs_type="xfs", minsize="100 MiB"))).key.endswith(
        "minsize"
    )
    two = bp(part(mountpoint="/home") + part(mountpoint="/home/"))
    assert "already given" in err(two).message
    assert err(bp(part(fs_type="ext4"))).key.endswith("mountpoint")


def test_too_small_default_disk() -> None:
    e = err('name = "x"\n[image]\nsize = "300 MiB"\n')
    assert e.key == "image.size" and e.line == 3


def test_layout_is_the_same_in_processes_with_different_hash_seeds() -> None:
    blueprint = ROOT / "blueprints/debian-dps-layout.toml"
    a = plan_json_across_processes(blueprint)
    assert a == make_plan(load(blueprint)).to_json()
    assert "admin" in a and '"password": "<plain text' in a
