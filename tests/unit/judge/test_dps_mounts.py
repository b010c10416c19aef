"""The dps-mounts and root-fills-disk checks (pure judgement of the guest's report)."""

from __future__ import annotations

import copy
from typing import Any

from composer.core.units import GiB, MiB
from composer.judge.dps_mounts import dps_mount_checks, root_fills_disk

ROOT_T = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
USR_T = "8484680c-9521-48c6-9c11-b0720656f69e"
SWAP_T = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
GEN_T = "0fc63daf-8483-4772-8e79-3d69d8477de4"
PARTS: list[dict[str, Any]] = [
    {"mountpoint": "/usr", "uuid": "u-1", "type_uuid": USR_T, "filesystem": "erofs", "fstab": False, "read_only": True},
    {"mountpoint": "swap", "uuid": "s-1", "type_uuid": SWAP_T, "filesystem": "swap", "fstab": False},
    {"mountpoint": "/opt", "uuid": "g-1", "type_uuid": GEN_T, "filesystem": "ext4", "fstab": True},
    {"mountpoint": "/", "uuid": "r-1", "type_uuid": ROOT_T, "filesystem": "ext4", "fstab": False},
]  # fmt: skip
GUEST: dict[str, Any] = {
    "fstab": ["PARTUUID=g-1\t/opt\text4\tdefaults\t0\t2"],
    "mounts": [
        {"target": "/", "source": "/dev/vda4", "fstype": "ext4", "options": "rw", "parttype": ROOT_T, "partuuid": "r-1"},
        {"target": "/usr", "source": "/dev/vda2", "fstype": "erofs", "options": "ro,relatime", "parttype": USR_T, "partuuid": "u-1"},
        {"target": "/opt", "source": "/dev/vda3", "fstype": "ext4", "options": "rw", "parttype": GEN_T, "partuuid": "g-1"},
    ],
    "swaps": [{"source": "/dev/vda5", "parttype": SWAP_T, "partuuid": "s-1", "size": 1}],
    "disk": {"device": "/dev/vda", "size": 4 * GiB, "root_partition": {"start": GiB, "size": 3 * GiB - MiB},
             "root_fs_size": 3 * GiB - 100 * MiB},
}  # fmt: skip


def checks(guest: dict[str, Any], grow: bool = False) -> dict[str, tuple[bool, str]]:
    return {n: (ok, d) for n, ok, d in dps_mount_checks(guest, PARTS, grow)}


def test_all_mounted_by_discovery_or_their_fstab_line() -> None:
    got = checks(GUEST, grow=True)
    ok, detail = got["dps-mounts"]
    assert ok, detail
    assert "/usr /dev/vda2 erofs usr-x86-64 ro by discovery" in detail
    assert "/opt /dev/vda3 ext4 linux-generic by fstab" in detail
    assert "swap /dev/vda5 swap by discovery" in detail
    assert got["root-fills-disk"][0]


def test_each_kind_of_failure_is_named() -> None:
    g = copy.deepcopy(GUEST)
    g["mounts"] = [m for m in g["mounts"] if m["target"] != "/usr"]
    assert "/usr: not mounted" in checks(g)["dps-mounts"][1]
    g = copy.deepcopy(GUEST)
    g["fstab"].append("/dev/vda2 /usr erofs ro 0 0")
    assert "DPS partitions need none" in checks(g)["dps-mounts"][1]
    g = copy.deepcopy(GUEST)
    g["fstab"] = []
    assert "/opt: expected an fstab line" in checks(g)["dps-mounts"][1]
    g = copy.deepcopy(GUEST)
    g["mounts"][1]["options"] = "rw"
    assert "read-only" in checks(g)["dps-mounts"][1]
    g = copy.deepcopy(GUEST)
    g["mounts"][0]["partuuid"] = "other"
    assert not checks(g)["dps-mounts"][0]
    g = copy.deepcopy(GUEST)
    g["swaps"] = []
    assert "swap: partition s-1 not enabled" in checks(g)["dps-mounts"][1]


def test_root_not_grown_fails() -> None:
    g = copy.deepcopy(GUEST)
    g["disk"]["size"] = 6 * GiB  # the disk was resized, root stayed
    name, ok, detail = root_fills_disk(g)
    assert name == "root-fills-disk" and not ok and "expected" in detail
    g["disk"]["root_partition"]["size"] = 5 * GiB - MiB
    assert not root_fills_disk(g)[1]  # partition grew, file system did not
    g["disk"]["root_fs_size"] = 5 * GiB - 200 * MiB
    assert root_fills_disk(g)[1]
    assert not root_fills_disk({})[1]


def test_guest_script_reports_mounts_swaps_and_disk_as_json() -> None:
    import json
    import os
    import shutil
    import subprocess
    from pathlib import Path

    script = Path(__file__).parents[3] / "composer/data/check/dps-composer-check"
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh is not None
    env = {**os.environ, "DPS_COMPOSER_CHECK_LIB": "1"}
    code = 'printf "[%s,%s,%s]" "$(json_mounts)" "$(json_swaps)" "$(json_disk)"'
    out = subprocess.run(
        [sh, "-c", f'. "{script}"; {code}'], env=env, capture_output=True, check=True
    )
    mounts, swaps, disk = json.loads(out.stdout)
    root = next(m for m in mounts if m["target"] == "/")
    assert {"source", "fstype", "options", "parttype", "partuuid", "fs_size"} <= set(root)
    assert isinstance(root["fs_size"], int) and root["fs_size"] > 0
    assert isinstance(swaps, list)
    assert disk is None or {"device", "size", "root_partition", "root_fs_size"} <= set(disk)


def test_two_swaps_and_var_by_fstab_each_by_its_own_line() -> None:
    var_t = "4d21b016-b534-45c2-a9fb-5c16e091fd2d"
    parts = [
        *[dict(p, fstab=True) if p["filesystem"] == "swap" else p for p in PARTS],
        {"mountpoint": "swap", "uuid": "s-2", "fs_uuid": "sf-2", "type_uuid": SWAP_T, "filesystem": "swap", "fstab": True},
        {"mountpoint": "/var", "uuid": "v-1", "fs_uuid": "vf-1", "type_uuid": var_t, "filesystem": "ext4", "fstab": True},
    ]  # fmt: skip
    g = copy.deepcopy(GUEST)
    g["fstab"] += [
        "PARTUUID=s-1\tnone\tswap\tdefaults\t0\t0",
        "PARTUUID=s-2\tnone\tswap\tdefaults\t0\t0",
        "UUID=vf-1\t/var\text4\tdefaults\t0\t2",
    ]
    g["swaps"].append({"source": "/dev/vda6", "parttype": SWAP_T, "partuuid": "s-2", "size": 1})
    g["mounts"].append({"target": "/var", "source": "/dev/vda7", "fstype": "ext4", "options": "rw",
                        "parttype": var_t, "partuuid": "v-1"})  # fmt: skip
    ((_, ok, detail),) = dps_mount_checks(g, parts, False)
    assert ok, detail
    assert "swap /dev/vda5 swap by fstab" in detail and "swap /dev/vda6 swap by fstab" in detail
    g["fstab"].remove("PARTUUID=s-2\tnone\tswap\tdefaults\t0\t0")  # each swap needs its own line
    assert "swap: expected an fstab line" in dps_mount_checks(g, parts, False)[0][2]
    assert "/var /dev/vda7 ext4 var by fstab" in detail
