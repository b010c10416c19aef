"""A generic virtual-machine UKI: dracut (not host-only, virt module set) + ukify.

Both run chrooted into the tools tree; the kernel, its modules and os-release come from the
image tree, bound in read-only places. Nothing of the build host ends up in the UKI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from composer import DATA
from composer.core.chroot import run_in
from composer.measure.pcr11 import PHASES
from composer.toolchain.pcrkey import PRIVATE_FILE, PUBLIC_FILE, PcrKey

WORK = "/run/dps-work"
IMAGE = "/run/dps-image"
PCR_KEYS = "/run/dps-pcr-keys"
# Every phase after the stub's own measurements: what systemd-cryptsetup (initrd or host) and
# systemd-repart find in PCR 11 when they unseal or enroll (ukify's default --phases).
SIGNED_PHASES: tuple[str, ...] = tuple(p for p in PHASES if p)
PCR_BANK = "sha256"  # the bank systemd-measure signs and the TPM policy is computed in


@dataclass(frozen=True)
class PcrSigning:
    """A signed PCR policy for the UKI: ukify runs ``systemd-measure sign`` over the
    measured sections for every phase path and embeds the JSON as ``.pcrsig``, the public
    key as ``.pcrpkey`` (ukify(1) --pcr-private-key, --pcr-public-key, --phases)."""

    key: PcrKey
    phases: tuple[str, ...] = SIGNED_PHASES
    bank: str = PCR_BANK

    def ukify_args(self) -> list[str]:
        return [
            f"--pcr-private-key={PCR_KEYS}/{PRIVATE_FILE}",
            f"--pcr-public-key={PCR_KEYS}/{PUBLIC_FILE}",
            f"--phases={' '.join(self.phases)}",
            f"--pcr-banks={self.bank}",
        ]


@dataclass(frozen=True)
class Uki:
    path: Path
    kernel_version: str
    cmdline: str


def build_uki(
    tools_tree: Path,
    image_tree: Path,
    kernel_version: str,
    cmdline: str,
    efi_arch: str,
    workdir: Path,
    usr_type: str = "",
    sbat: str | None = None,
    pcr: PcrSigning | None = None,
) -> Uki:
    """``sbat``: the UKI's own SBAT line(s), added to the stub's (``ukify --sbat``); ``pcr``:
    sign the expected PCR 11 values (the key directory is bound in read-only for that one
    command; the private key's bytes never leave it). Only ``workdir`` is bound writable."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "dracut-virt.conf"
    conf.write_text((DATA / "dracut-virt.conf").read_text())
    (workdir / "tmp").mkdir(exist_ok=True)
    (workdir / "dracut.conf.d").mkdir(exist_ok=True)
    stage_initrd_extras(workdir / "initrd-extra", usr_type)
    binds = [(workdir, WORK)]  # the only place dracut and ukify write to
    inputs = [(image_tree, IMAGE), (image_tree / "usr/lib/modules", "/usr/lib/modules")]
    run_in(
        tools_tree,
        [
            "dracut",
            "--quiet",
            "--force",
            "--no-hostonly",
            "--reproducible",
            f"--conf={WORK}/dracut-virt.conf",
            f"--confdir={WORK}/dracut.conf.d",
            f"--tmpdir={WORK}/tmp",
            "--include",
            f"{WORK}/initrd-extra",
            "/",
            "--kver",
            kernel_version,
            f"{WORK}/initrd.img",
        ],
        binds=binds,
        ro_binds=inputs,
        env={"SOURCE_DATE_EPOCH": "0"},
    )
    run_in(
        tools_tree,
        [
            "ukify",
            "build",
            f"--linux={IMAGE}/boot/vmlinuz-{kernel_version}",
            f"--initrd={WORK}/initrd.img",
            f"--cmdline={cmdline}",
            f"--os-release=@{IMAGE}/usr/lib/os-release",
            f"--uname={kernel_version}",
            *([f"--sbat={sbat}"] if sbat else []),
            f"--stub=/usr/lib/systemd/boot/efi/linux{efi_arch}.efi.stub",
            *(pcr.ukify_args() if pcr else []),
            f"--output={WORK}/uki.efi",
        ],
        binds=binds,
        ro_binds=[*inputs, *([(pcr.key.directory, PCR_KEYS)] if pcr else [])],
    )
    return Uki(workdir / "uki.efi", kernel_version, cmdline)


def stage_initrd_extras(dest: Path, usr_type: str) -> None:
    """Files added to the initrd as they are: the DPS /usr discovery unit and its script."""
    src = DATA / "initrd"
    units = dest / "usr/lib/systemd/system"
    (units / "initrd-fs.target.wants").mkdir(parents=True, exist_ok=True)
    (dest / "usr/lib/dps-composer").mkdir(parents=True, exist_ok=True)
    script = dest / "usr/lib/dps-composer/discover-usr"
    script.write_text((src / "discover-usr").read_text())
    script.chmod(0o755)
    unit = (src / "dps-composer-usr.service").read_text().replace("@USR_TYPE@", usr_type)
    (units / "dps-composer-usr.service").write_text(unit)
    conf = dest / "usr/lib/systemd/system.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "50-dps-composer.conf").write_text((src / "50-dps-composer-timeouts.conf").read_text())
    link = units / "initrd-fs.target.wants/dps-composer-usr.service"
    link.unlink(missing_ok=True)
    link.symlink_to("../dps-composer-usr.service")
