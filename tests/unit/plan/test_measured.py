"""[measured]: what the blueprint accepts, what the plan makes of it (keys, packages, room at the
end of the disk for the sealed volumes) and what it refuses, each by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.core.errors import BlueprintError
from composer.plan.plan import SEALING_PACKAGES, plan_text
from composer.toolchain.pcrkey import PcrKey
from composer.toolchain.ukify import SIGNED_PHASES, PcrSigning

BASE = 'name = "m"\ndistro = "debian-13"\n'


def refused(text: str) -> str:
    with pytest.raises(BlueprintError) as info:
        plan_text(BASE + text, "/bp/m.toml")
    return str(info.value)


def test_a_signed_policy_and_a_sealed_volume_are_planned() -> None:
    plan = plan_text(BASE + '[measured]\nsign_policy = true\nkeys = "k"\nsealed = ["srv"]\n',
                     "/bp/m.toml")  # fmt: skip
    assert plan.pcr_policy and plan.pcr_keys == "/bp/k" and plan.sealed == ("srv",)
    assert set(SEALING_PACKAGES) <= set(plan.packages)
    assert dict(plan.package_origins)["systemd-cryptsetup"] == "measured.sealed"


def test_the_layout_leaves_room_for_the_sealed_volumes_at_the_end() -> None:
    size = 96 * 1024**2
    plan = plan_text(BASE + f'[measured]\nsign_policy = true\nsealed = ["srv", "home"]\n'
                     f"sealed_size = {size}\n")  # fmt: skip
    plain = plan_text(BASE)
    root, plain_root = plan.partition("root"), plain.partition("root")
    assert plan.disk_size == plain.disk_size
    assert plain_root.size - root.size == 2 * size
    assert plan.grow_root  # the root still grows on a bigger disk


def test_no_policy_no_sealing_packages() -> None:
    plan = plan_text(BASE)
    assert not plan.pcr_policy and not plan.sealed
    assert "systemd-cryptsetup" not in plan.packages


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[measured]\nsealed = ["srv"]\n', ["measured", "set sign_policy = true"]),
        ('[measured]\nkeys = "k"\n', ["measured", "sign_policy is false"]),
        ('[measured]\nsign_policy = true\nkeys = " "\n', ["measured", "give a directory"]),
        ('[measured]\nsign_policy = true\nsealed = ["var"]\n', ["measured.sealed[0]", "'srv'"]),
        ('[measured]\nsign_policy = true\nsealed = ["srv", "srv"]\n', ["name each partition"]),
        ('[measured]\nsign_policy = "yes"\n', ["measured.sign_policy"]),
        ('[measured]\nsign_policy = true\nrecovery = "console"\n', ["name them in sealed"]),
        (
            '[measured]\nsign_policy = true\nsealed = ["srv"]\nrecovery = "print"\n',
            ["measured.recovery", "'none'", "'console'"],
        ),
    ],
)
def test_bad_measured_tables_name_the_key(text: str, words: list[str]) -> None:
    message = refused(text)
    assert "/bp/m.toml" in message
    for word in words:
        assert word in message, message


def test_a_prebuilt_uki_cannot_carry_a_signed_policy() -> None:
    message = refused('[[packages]]\nname = "uki-virt"\n[measured]\nsign_policy = true\n')
    assert "measured.sign_policy" in message and "uki-virt" in message


def test_a_sealed_volume_is_not_also_a_partition() -> None:
    message = refused(
        '[measured]\nsign_policy = true\nsealed = ["srv"]\n'
        '[[customizations.filesystem]]\nmountpoint = "/srv"\nminsize = "100 MiB"\n'
    )
    assert "measured.sealed[0]" in message and "created at first boot" in message


def test_fedora_images_refuse_the_table() -> None:
    with pytest.raises(BlueprintError) as info:
        plan_text('name = "f"\ndistro = "fedora-42"\n[measured]\nsign_policy = true\n')
    assert "measured" in str(info.value) and "prebuilt UKI" in str(info.value)


def test_the_signed_phases_are_every_phase_after_the_stub() -> None:
    assert SIGNED_PHASES == (
        "enter-initrd",
        "enter-initrd:leave-initrd",
        "enter-initrd:leave-initrd:sysinit",
        "enter-initrd:leave-initrd:sysinit:ready",
    )


def test_ukify_is_told_every_signed_phase_and_the_key_inside_the_chroot() -> None:
    args = PcrSigning(PcrKey(Path("/keys"))).ukify_args()
    assert args == [
        "--pcr-private-key=/run/dps-pcr-keys/tpm2-pcr-private-key.pem",
        "--pcr-public-key=/run/dps-pcr-keys/tpm2-pcr-public-key.pem",
        "--phases=" + " ".join(SIGNED_PHASES),
        "--pcr-banks=sha256",
    ]
