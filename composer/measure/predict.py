"""The manifest's firmware PCR predictions (PCR 4 and 7) for a staged ESP, and which of them the
boot check enforces.

A prediction is enforced (written to ``expect.pcrs``) only for boot configurations whose
prediction was shown equal to the live PCR on a real OVMF + swtpm boot, event by event; for
any other configuration it is recorded with ``"enforced": false`` and the verdict only reports
it. The proven configurations are listed in :data:`PROVEN` with how they were proven.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from composer.core.errors import ComposerError
from composer.image.varstore import empty_varstore, read_varstore
from composer.measure import firmware as measure_fw
from composer.measure.pcr11 import event_digests, uki_sections
from composer.spec.arch import removable_path

BANK = "sha256"

# (boot loader, Secure Boot) -> how the PCR 4 and PCR 7 predictions were proven.
PROVEN: dict[tuple[str, bool], str] = {
    ("systemd-boot", False): (
        "Debian 12 OVMF_CODE_4M.fd + empty OVMF_VARS_4M.fd, systemd-boot and systemd-stub 257 "
        "from trixie: all PCR 4 and PCR 7 events equal (tests/integration/test_measured_boot.py)"
    ),
    ("grub2", False): (
        "Debian 12 OVMF_CODE_4M.fd + empty OVMF_VARS_4M.fd, trixie's standalone EFI GRUB "
        "chainloading the UKI (systemd-stub 257): all PCR 4 and PCR 7 events equal "
        "(tests/integration/test_boot_chains.py boots it with these PCRs enforced)"
    ),
    ("uki-direct", True): (
        "Debian 12 OVMF_CODE_4M.secboot.fd + the build's NAME.vars.fd (keys and the Boot#### "
        "entry for the UKI): the firmware starts the signed UKI itself; all PCR 4 and PCR 7 "
        "events equal (tests/integration/test_boot_chains.py boots it with these PCRs enforced)"
    ),
    ("systemd-boot", True): (
        "Debian 12 OVMF_CODE_4M.secboot.fd + the build's NAME.vars.fd (PK/KEK/db enrolled), "
        "signed systemd-boot and UKI with systemd-stub 257: all PCR 4 and PCR 7 events equal, "
        "one db authority, no event for the stub's kernel (tests/integration/test_boot_chains.py "
        "boots it with these PCRs enforced)"
    ),
}


def loader_binary(esp: Path, loaders: Sequence[str], efi_arch: str) -> Path | None:
    """The PE the firmware starts from the removable-media path (none: it starts the UKI)."""
    fallback = removable_path(efi_arch)
    if not loaders:
        return None
    return esp / (fallback if fallback in loaders else loaders[0])


def pcr11_stub_events(uki: Path) -> list[dict[str, Any]]:
    """systemd-stub's PCR 11 events (EV_IPL, section name then data) as the firmware log has them."""
    return [
        {"pcr": 11, "type": "EV_IPL", "digest": d.hex(), "what": what}
        for what, d in event_digests(uki_sections(uki), BANK)
    ]


def predict(
    *,
    loader: str,
    esp: Path,
    uki_rel: str,
    loaders: Sequence[str],
    efi_arch: str,
    varstore: Path | None,
) -> dict[str, Any]:
    """The manifest's ``measured_boot`` object for the final (signed) files in ``esp``."""
    store = read_varstore(varstore) if varstore else empty_varstore()
    binary = loader_binary(esp, loaders, efi_arch)
    uki = (esp / uki_rel).read_bytes()
    chain = measure_fw.boot_chain(binary.read_bytes() if binary else None, uki, store.secure_boot)
    images = [image for _, image in chain]
    proof = PROVEN.get((loader, store.secure_boot))
    pcrs: dict[str, dict[str, Any]] = {}
    for n in (4, 7):
        try:
            if n == 4:
                events = measure_fw.pcr4_measurements(chain, (BANK,))
            else:
                events = measure_fw.pcr7_measurements(store, images, (BANK,))
        except ComposerError as err:  # e.g. no db entry verifies a signed image
            pcrs[str(n)] = {"error": str(err), "enforced": False}
            continue
        pcrs[str(n)] = {
            "value": measure_fw.pcr_value(events, BANK),
            "events": [e.to_dict(BANK) for e in events],
            "enforced": proof is not None,
        }
    pcrs["11"] = {"events": pcr11_stub_events(esp / uki_rel), "enforced": True}
    return {
        "bank": BANK,
        "varstore": varstore.name if varstore else store.source,
        "secure_boot": store.secure_boot,
        "boot_chain": [what for what, _ in chain],
        "pcrs": pcrs,
        "proof": proof
        or (
            f"not yet shown equal on a real boot for loader {loader} with Secure Boot "
            f"{'on' if store.secure_boot else 'off'}: reported, not enforced"
        ),
    }


def enforced_pcrs(measured: dict[str, Any]) -> dict[str, str]:
    """PCR -> value for ``expect.pcrs`` (only the enforced predictions with a value)."""
    return {
        n: p["value"]
        for n, p in measured.get("pcrs", {}).items()
        if p.get("enforced") and "value" in p
    }
