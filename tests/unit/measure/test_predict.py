"""The manifest's measured_boot part for a staged ESP, and which predictions are enforced."""

from __future__ import annotations

from pathlib import Path

from composer.measure import predict

from ..pe_fixture import build_pe

EMPTY_VARSTORE_PCR7 = "65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068"


def stage(esp: Path) -> str:
    kernel = build_pe({".text": b"kernel"})
    uki = build_pe(
        {
            ".sdmagic": b"#### LoaderInfo: systemd-stub 257.13 ####",
            ".osrel": b"ID=test\n",
            ".cmdline": b"console=ttyS0",
            ".linux": kernel,
        }
    )
    for path, data in (
        ("EFI/BOOT/BOOTX64.EFI", build_pe({".text": b"loader"})),
        ("EFI/systemd/systemd-bootx64.efi", build_pe({".text": b"loader"})),
        ("EFI/Linux/test.efi", uki),
    ):
        (esp / path).parent.mkdir(parents=True, exist_ok=True)
        (esp / path).write_bytes(data)
    return "EFI/Linux/test.efi"


def test_proven_configuration_is_enforced(tmp_path: Path) -> None:
    uki = stage(tmp_path)
    loaders = ["EFI/systemd/systemd-bootx64.efi", "EFI/BOOT/BOOTX64.EFI"]
    mb = predict.predict(
        loader="systemd-boot",
        esp=tmp_path,
        uki_rel=uki,
        loaders=loaders,
        efi_arch="x64",
        varstore=None,
    )
    assert mb["boot_chain"] == ["boot loader", "UKI", "UKI .linux"]
    assert mb["pcrs"]["7"]["value"] == EMPTY_VARSTORE_PCR7
    assert [e["what"] for e in mb["pcrs"]["4"]["events"]][2:] == [
        "boot loader",
        "UKI",
        "UKI .linux",
    ]
    assert predict.enforced_pcrs(mb) == {
        "4": mb["pcrs"]["4"]["value"],
        "7": EMPTY_VARSTORE_PCR7,
    }
    # systemd-stub's own events, as the firmware log will show them (.sdmagic is not measured)
    stub = [e["what"] for e in mb["pcrs"]["11"]["events"]]
    assert stub == [
        ".linux (name)",
        ".linux",
        ".osrel (name)",
        ".osrel",
        ".cmdline (name)",
        ".cmdline",
    ]


def test_unproven_configuration_is_only_reported(tmp_path: Path) -> None:
    uki = stage(tmp_path)
    mb = predict.predict(
        loader="uki-direct", esp=tmp_path, uki_rel=uki, loaders=[], efi_arch="x64", varstore=None
    )
    assert mb["boot_chain"] == ["UKI", "UKI .linux"]
    assert not mb["pcrs"]["4"]["enforced"] and "not yet shown equal" in mb["proof"]
    assert predict.enforced_pcrs(mb) == {}
