"""Volumes sealed to the UKI's signed PCR policy ([measured] sealed), as files in the image:

- a systemd-repart definition per volume (repart.d(5)): a partition of its DPS type, created
  in the free space the layout leaves at the end of the disk, LUKS2-encrypted with only a TPM2
  token (``Encrypt=tpm2``) and formatted, by systemd-repart.service at first boot;
- a drop-in that has systemd-repart bind that token to the signed policy: the public key
  systemd-stub exported from the UKI's ``.pcrpkey`` (/run/systemd/tpm2-pcr-public-key.pem,
  copied from /.extra by the initrd's tmpfiles 20-systemd-stub.conf) over PCR 11, and no
  literal PCR values, so that any UKI signed by the same key unlocks it and nothing else;
- a drop-in for the systemd-cryptsetup@.service that systemd-gpt-auto-generator makes for the
  volume at later boots (it finds the partition by its type and unlocks it with
  ``tpm2-device=auto``), adding ``headless=true``: when the TPM refuses (another UKI, a changed
  command line, a signature by another key) the unit fails and says why on the console instead
  of waiting for a passphrase nobody will type;
- with ``recovery = "console"``, a first-boot unit per volume that enrolls a recovery key and
  shows it on the console once (composer/data/sealed/recovery-key; composer/judge/recovery.py
  keeps it out of ``boot``'s logs), and an unlock drop-in without ``headless``: when the TPM
  refuses, systemd-cryptsetup asks for the recovery key on the console.
"""

from __future__ import annotations

from composer import DATA
from composer.plan.plan import Plan
from composer.rootfs.intree import Tree

REPART_DIR = "/usr/lib/repart.d"
REPART_DROPIN = "/usr/lib/systemd/system/systemd-repart.service.d/50-dps-composer-sealed.conf"
PUBLIC_KEY = "/run/systemd/tpm2-pcr-public-key.pem"
RECOVERY_SCRIPT = "/usr/libexec/dps-composer/recovery-key"
RECOVERY_UNIT = "dps-composer-recovery-key@.service"
UNIT_DIR = "/usr/lib/systemd/system"


def label(designator: str) -> str:
    """The GPT partition name systemd-repart gives the volume (and the unlock unit opens)."""
    return f"dps-sealed-{designator}"


def repart_definition(designator: str, size: int) -> str:
    return (
        f"# dps-composer: /{designator}, created at first boot, sealed to the UKI's signed PCR\n"
        "# policy (a TPM2 token only); found by its type and unlocked by the TPM at later boots.\n"
        "[Partition]\n"
        f"Type={designator}\n"
        f"Label={label(designator)}\n"
        "Format=ext4\n"
        "Encrypt=tpm2\n"
        f"SizeMinBytes={size}\n"
        f"SizeMaxBytes={size}\n"
    )


def repart_dropin() -> str:
    return (
        "# dps-composer: bind Encrypt=tpm2 volumes to the UKI's signed PCR 11 policy only\n"
        "[Service]\n"
        "ExecStart=\n"
        "ExecStart=systemd-repart --dry-run=no --pretty=no --tpm2-device=auto --tpm2-pcrs= "
        f"--tpm2-public-key={PUBLIC_KEY} --tpm2-public-key-pcrs=11\n"
        "Environment=SYSTEMD_LOG_TARGET=console\n"
        "StandardOutput=journal+console\n"
        "StandardError=journal+console\n"
    )


def cryptsetup_dropin(designator: str, recovery: str = "none") -> str:
    if recovery == "console":
        why, options = "or ask for its recovery key on the console", "tpm2-device=auto"
    else:
        why, options = "or fail, never ask for a passphrase", "tpm2-device=auto,headless=true"
    return (
        f"# dps-composer: unlock /{designator} by the TPM {why}\n"
        "[Service]\n"
        "ExecStart=\n"
        f"ExecStart=systemd-cryptsetup attach {designator} "
        f"/dev/disk/by-partlabel/{label(designator)} - {options}\n"
        "Environment=SYSTEMD_LOG_TARGET=console\n"
        "StandardOutput=journal+console\n"
        "StandardError=journal+console\n"
    )


def cryptsetup_dropin_path(designator: str) -> str:
    return f"{UNIT_DIR}/systemd-cryptsetup@{designator}.service.d/50-dps-composer-sealed.conf"


def apply(t: Tree, plan: Plan) -> None:
    """Write the definitions and drop-ins of every sealed volume into the image tree."""
    if not plan.sealed:
        return
    for n, designator in enumerate(plan.sealed):
        path = f"{REPART_DIR}/60-dps-composer-sealed-{n}-{designator}.conf"
        t.write(path, repart_definition(designator, plan.sealed_size))
        t.write(cryptsetup_dropin_path(designator), cryptsetup_dropin(designator, plan.recovery))
    t.write(REPART_DROPIN, repart_dropin())
    if plan.recovery == "console":
        _recovery_units(t, plan.sealed)


def _recovery_units(t: Tree, designators: tuple[str, ...]) -> None:
    source = DATA / "sealed"
    t.write(RECOVERY_SCRIPT, (source / "recovery-key").read_bytes(), mode=0o755)
    t.write(f"{UNIT_DIR}/{RECOVERY_UNIT}", (source / RECOVERY_UNIT).read_bytes())
    t.makedirs(f"{UNIT_DIR}/multi-user.target.wants")
    for designator in designators:
        instance = RECOVERY_UNIT.replace("@", f"@{designator}")
        t.symlink(f"{UNIT_DIR}/multi-user.target.wants/{instance}", f"../{RECOVERY_UNIT}")
