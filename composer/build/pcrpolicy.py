"""The signed PCR policy of a build: which key pair signs the UKI's expected PCR 11 values
(``[measured] keys``, else a pair kept in the cache, made the first time) and the boot phases
it signs, as systemd measures them (systemd-pcrphase(8): the initrd, leaving it, sysinit,
ready)."""

from __future__ import annotations

from pathlib import Path

from composer.core.errors import HostError
from composer.manifest import model
from composer.measure.pcr11 import uki_sections
from composer.measure.pcrsig import signed_policy
from composer.plan.plan import Plan
from composer.spec import dps
from composer.toolchain.pcrkey import PcrKey, ensure_pcr_key, load_pcr_key
from composer.toolchain.ukify import PCR_BANK, SIGNED_PHASES


def default_pcr_key_dir(cache: Path) -> Path:
    return cache / "keys" / "pcr"


def policy_key(plan: Plan, cache: Path) -> tuple[PcrKey, bool] | None:
    """The key pair that signs the image's PCR policy, None when it has none.
    (key, generated): a directory the blueprint names must hold a pair (a typo must not
    silently sign with a throw-away key); the default one is made when missing."""
    if not plan.pcr_policy:
        return None
    if plan.pcr_keys:
        return load_pcr_key(Path(plan.pcr_keys)), False
    return ensure_pcr_key(default_pcr_key_dir(cache))


def sealed_volumes(plan: Plan) -> list[model.SealedVolume]:
    return [
        model.SealedVolume(
            designator=d,
            type_uuid=str(dps.by_designator(d, plan.arch.dps).uuid),
            mountpoint=f"/{d}",
            size=plan.sealed_size,
        )
        for d in plan.sealed
    ]


def manifest_policy(
    plan: Plan, uki: Path, key: tuple[PcrKey, bool] | None
) -> model.PcrPolicy | None:
    """The policy as the built UKI carries it, checked: its .pcrpkey is the key's and a valid
    signature covers every phase in SIGNED_PHASES (else ukify made something else: exit 3)."""
    if key is None:
        return None
    policy = signed_policy(uki_sections(uki), PCR_BANK)
    if policy is None or policy.fingerprint != key[0].fingerprint:
        raise HostError(f"{uki}: ukify left out .pcrsig/.pcrpkey or embedded another key")
    missing = [p for p in SIGNED_PHASES if p not in policy.signed]
    if missing:
        raise HostError(f"{uki}: .pcrsig has no valid signature for phase(s) {', '.join(missing)}")
    return model.PcrPolicy(
        bank=PCR_BANK,
        public_key_sha256=policy.fingerprint,
        keys=str(key[0].directory),
        generated=key[1],
        signed_phases=list(policy.signed),
        sealed=sealed_volumes(plan),
        recovery=plan.recovery,
    )
