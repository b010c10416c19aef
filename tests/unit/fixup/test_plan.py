"""composer.fixup.plan / edits: the pure rules that make a system DPS- and UKI-ready."""

from __future__ import annotations

from dataclasses import replace

import pytest

from composer.fixup import edits
from composer.fixup.actions import CopyFile, InstallSystemdBoot, SetType, SetUuid, WriteFile
from composer.fixup.facts import Facts, Partition
from composer.fixup.plan import plan_fixup, resolve_spec
from composer.spec import dps

ESP = str(dps.by_name("esp").uuid)
GENERIC = str(dps.by_name("linux-generic").uuid)
ROOT = str(dps.by_name("root-x86-64").uuid)
HOME = str(dps.by_name("home").uuid)
SWAP = str(dps.by_name("swap").uuid)
VAR = str(dps.by_name("var").uuid)
MID = "0123456789abcdef0123456789abcdef"
SDBOOT = "EFI/systemd/systemd-bootx64.efi"
UKI = "EFI/Linux/debian-6.12.efi"


def part(n: int, type_uuid: str, fstype: str = "ext4", **kw: str) -> Partition:
    return Partition(
        number=n,
        node=f"/dev/vda{n}",
        type_uuid=type_uuid,
        uuid=kw.pop("uuid", f"0000000{n}-1111-4222-8333-444444444444"),
        fstype=fstype,
        fs_uuid=kw.pop("fs_uuid", f"fs{n}"),
        **kw,
    )


def legacy(**kw: object) -> Facts:
    base = Facts(
        disk="/dev/vda",
        label="gpt",
        partitions=(part(1, ESP, "vfat"), part(2, GENERIC)),
        root="/dev/vda2",
        arch="x86-64",
        efi_arch="x64",
        os_id="debian",
        machine_id=MID,
        fstab="# static\nUUID=fs2 / ext4 defaults 0 1\n",
        cmdline_files={
            "/etc/kernel/cmdline": "root=PARTUUID=00000002 console=ttyS0\n",
            "/efi/loader/entries/legacy.conf": "title L\noptions root=UUID=fs2 quiet\n",
        },
        esp_mount="/efi",
        esp_files={SDBOOT: "a", UKI: "b", "EFI/BOOT/BOOTX64.EFI": "a"},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def kinds(plan: object) -> list[str]:
    return [type(a).__name__ for a in plan.actions]  # type: ignore[attr-defined]


def test_legacy_root_gets_type_fstab_line_and_root_args_dropped() -> None:
    plan = plan_fixup(legacy())
    assert plan.root_discoverable
    set_type = plan.actions[0]
    assert isinstance(set_type, SetType) and set_type.new == ROOT and set_type.partition.number == 2
    writes = {a.path: a for a in plan.actions if isinstance(a, WriteFile)}
    assert writes["/etc/fstab"].new == (
        "# static\n" + edits.FSTAB_MARK + "UUID=fs2 / ext4 defaults 0 1\n"
    )
    assert writes["/etc/kernel/cmdline"].new == "console=ttyS0\n"
    assert writes["/efi/loader/entries/legacy.conf"].new == "title L\noptions quiet\n"
    assert "linux-generic" in set_type.describe() and "root-x86-64" in set_type.describe()


def test_applying_the_plan_makes_a_second_plan_empty() -> None:
    facts = legacy()
    plan = plan_fixup(facts)
    types = {a.partition.number: a.new for a in plan.actions if isinstance(a, SetType)}
    files = {a.path: a.new for a in plan.actions if isinstance(a, WriteFile)}
    after = replace(
        facts,
        partitions=tuple(
            replace(p, type_uuid=types.get(p.number, p.type_uuid)) for p in facts.partitions
        ),
        fstab=files["/etc/fstab"],
        cmdline_files={k: files.get(k, v) for k, v in facts.cmdline_files.items()},
    )
    second = plan_fixup(after)
    assert second.actions == () and second.root_discoverable
    assert any("has type root-x86-64" in n for n in second.notes)


def test_dps_image_has_nothing_to_change() -> None:
    facts = legacy(
        partitions=(part(1, ESP, "vfat"), part(2, ROOT)), fstab="# none\n", cmdline_files={}
    )
    plan = plan_fixup(facts)
    assert not plan.changes and plan.problems == ()


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        (legacy(label="dos"), "not GPT"),
        (legacy(root="/dev/mapper/vg-root"), "not a partition"),
        (
            legacy(partitions=(part(1, "0fc63daf-8483-4772-8e79-3d69d8477de4"), part(2, GENERIC))),
            "no ESP",
        ),
        (
            legacy(
                partitions=(part(1, ESP, "vfat"), part(2, ROOT), part(3, GENERIC)), root="/dev/vda3"
            ),
            "comes first",
        ),
        (legacy(esp_files={}), "neither systemd-boot nor a UKI"),
    ],
)
def test_root_stays_configured_when_discovery_would_fail(facts: Facts, problem: str) -> None:
    plan = plan_fixup(facts)
    assert not plan.root_discoverable
    assert any(problem in p for p in plan.problems), plan.problems
    assert not [a for a in plan.actions if isinstance(a, WriteFile)], "root= and fstab must stay"


def test_fstab_line_with_options_discovery_cannot_give_is_kept() -> None:
    facts = legacy(fstab="UUID=fs2 / btrfs subvol=root,compress=zstd 0 0\n")
    plan = plan_fixup(facts)
    assert not [a for a in plan.actions if isinstance(a, WriteFile) and a.path == "/etc/fstab"]
    assert any("subvol=root" in p for p in plan.problems)


def test_home_swap_and_var_get_types_and_var_the_machine_id_uuid() -> None:
    facts = legacy(
        partitions=(
            part(1, ESP, "vfat"),
            part(2, GENERIC),
            part(3, GENERIC, "swap"),
            part(4, GENERIC),
            part(5, GENERIC, fs_uuid="fsvar"),
        ),  # fmt: skip
        fstab=(
            "UUID=fs2 / ext4 defaults 0 1\n/dev/vda3 none swap sw 0 0\n"
            "PARTUUID=00000004-1111-4222-8333-444444444444 /home ext4 defaults,nofail 0 2\n"
            "UUID=FSVAR /var ext4 defaults 0 2\n/dev/vdb1 /data ext4 defaults 0 2\n"
        ),
    )
    plan = plan_fixup(facts)
    types = {a.partition.number: a.new for a in plan.actions if isinstance(a, SetType)}
    assert types == {2: ROOT, 3: SWAP, 4: HOME, 5: VAR}
    (set_uuid,) = [a for a in plan.actions if isinstance(a, SetUuid)]
    assert set_uuid.new == str(dps.var_partition_uuid(MID))
    fstab = next(a for a in plan.actions if isinstance(a, WriteFile) and a.path == "/etc/fstab")
    kept = [ln for ln in fstab.new.splitlines() if not ln.startswith("#")]
    assert kept == ["/dev/vdb1 /data ext4 defaults 0 2"]


def test_var_without_machine_id_keeps_its_line() -> None:
    facts = legacy(
        partitions=(part(1, ESP, "vfat"), part(2, GENERIC), part(3, GENERIC)),
        fstab="UUID=fs2 / ext4 defaults 0 1\nUUID=fs3 /var ext4 defaults 0 2\n",
        machine_id=None,
    )
    plan = plan_fixup(facts)
    assert not [a for a in plan.actions if isinstance(a, SetUuid)]
    fstab = next(a for a in plan.actions if isinstance(a, WriteFile) and a.path == "/etc/fstab")
    assert "UUID=fs3 /var ext4 defaults 0 2\n" in fstab.new.splitlines(keepends=True)
    assert any("no machine-id" in p for p in plan.problems)


def test_second_home_partition_is_not_discovered_so_its_line_stays() -> None:
    facts = legacy(
        partitions=(part(1, ESP, "vfat"), part(2, GENERIC), part(3, HOME), part(4, GENERIC)),
        fstab="UUID=fs2 / ext4 defaults 0 1\nUUID=fs4 /home ext4 defaults 0 2\n",
    )
    plan = plan_fixup(facts)
    assert not [a for a in plan.actions if isinstance(a, SetType) and a.partition.number == 4]
    fstab = next(a for a in plan.actions if isinstance(a, WriteFile) and a.path == "/etc/fstab")
    assert "UUID=fs4 /home ext4 defaults 0 2" in fstab.new
    assert any("partition 3 already has type home" in p for p in plan.problems)


def test_fedora_esp_at_boot_efi_keeps_its_line_and_gets_the_esp_type() -> None:
    facts = legacy(
        partitions=(part(1, GENERIC, "vfat", fs_uuid="ABCD-1234"), part(2, GENERIC)),
        fstab="UUID=fs2 / ext4 defaults 0 1\nUUID=ABCD-1234 /boot/efi vfat umask=077 0 2\n",
        esp_mount="/boot/efi",
        esp_files={},
    )
    plan = plan_fixup(facts)
    assert [a.new for a in plan.actions if isinstance(a, SetType)] == [ROOT, ESP]
    assert not [a for a in plan.actions if isinstance(a, WriteFile)]  # the ESP had no type yet
    assert not plan.root_discoverable


def test_loader_systemd_boot_installs_it_and_copies_the_uki() -> None:
    facts = legacy(esp_files={}, ukis={"/usr/lib/modules/6.12/vmlinuz-virt.efi": "u"},
                   sdboot_available=True)  # fmt: skip
    plan = plan_fixup(facts, "systemd-boot")
    copy = next(a for a in plan.actions if isinstance(a, CopyFile))
    assert copy.dst == "/efi/EFI/Linux/debian-6.12.efi"
    assert any(isinstance(a, InstallSystemdBoot) and a.esp == "/efi" for a in plan.actions)
    assert plan.root_discoverable


def test_loader_systemd_boot_missing_binary_keeps_root() -> None:
    plan = plan_fixup(legacy(esp_files={UKI: "b"}), "systemd-boot")
    assert not plan.root_discoverable and any("systemd-boot-unsigned" in p for p in plan.problems)


def test_loader_uki_direct_puts_the_uki_on_the_fallback_path_once() -> None:
    plan = plan_fixup(legacy(), "uki-direct")
    copy = next(a for a in plan.actions if isinstance(a, CopyFile))
    assert (copy.src, copy.dst) == (f"/efi/{UKI}", "/efi/EFI/BOOT/BOOTX64.EFI")
    done = legacy(esp_files={UKI: "b", "EFI/BOOT/BOOTX64.EFI": "b"})
    assert not [a for a in plan_fixup(done, "uki-direct").actions if isinstance(a, CopyFile)]


@pytest.mark.parametrize(
    ("spec", "number"),
    [("UUID=fs2", 2), ("PARTUUID=00000002-1111-4222-8333-444444444444", 2), ("/dev/vda1", 1),
     ("/dev/disk/by-uuid/fs2", 2), ("LABEL=data", 3), ("PARTLABEL=p\\040x", 3), ("UUID=nope", None)],
)  # fmt: skip
def test_resolve_spec(spec: str, number: int | None) -> None:
    parts = (
        part(1, ESP, "vfat"),
        part(2, GENERIC),
        part(3, GENERIC, fs_label="data", part_label="p x"),
    )
    found = resolve_spec(spec, parts)
    assert (found.number if found else None) == number


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("root=/dev/vda2 ro quiet", "ro quiet"),
        ('quiet "root=a b" x', "quiet x"),
        ('a="root=x y" rootfstype=ext4 rootflags=subvol=@', 'a="root=x y" rootflags=subvol=@'),
        ("  console=ttyS0   ", "  console=ttyS0   "),  # nothing to drop: unchanged
        ("rootwait roothash=abc", "rootwait roothash=abc"),
    ],
)
def test_strip_root_args(line: str, want: str) -> None:
    assert edits.strip_root_args(line) == want


def test_grub_default_keeps_quotes_and_other_lines() -> None:
    text = "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"root=UUID=x rhgb quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT='root=/dev/sda1'\n"
    assert edits.edit_grub_default(text) == (
        "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"rhgb quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT=''\n"
    )


@pytest.mark.parametrize(
    ("options", "ok"),
    [("defaults", True), ("rw,relatime,x-systemd.growfs", True), ("ro", False),
     ("subvol=root", False), ("defaults,noatime", False), ("", True)],
)  # fmt: skip
def test_options_reproducible(options: str, ok: bool) -> None:
    assert edits.options_reproducible(options) is ok


def test_running_helpers_read_os_release_and_machine_id() -> None:
    from composer.fixup.running import machine_id
    from composer.spec.arch import efi_suffix
    from composer.spec.osrelease import os_id

    assert os_id('NAME="Fedora Linux"\nID=fedora\n') == "fedora"
    assert os_id('ID="debian"\n') == "debian" and os_id(None) == "linux"
    assert machine_id(MID + "\n") == MID
    assert machine_id("uninitialized\n") is None and machine_id("") is None
    assert efi_suffix("x86-64") == "x64" and efi_suffix("arm64") == "aa64"
