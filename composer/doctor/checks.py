"""The host checks of `dps-composer doctor`, each a :class:`Finding`: ``ok``, ``warn`` (works,
but slower or smaller than it should be) or ``fail`` (a build or boot would stop: exit 3),
with what to install or set.

The KVM probe is made afresh (the one `boot` caches is bypassed): the point of asking is
to learn what the host can do now.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from composer.core import paths, tools
from composer.core.errors import ComposerError
from composer.core.units import human_size
from composer.image.firmware import find_firmware
from composer.judge.kvm import probe_kvm
from composer.spec.arch import ARCHES

SEARCH = "/usr/sbin:/sbin:/usr/bin:/bin"
WORK_FREE = 8 << 30  # a default build's trees and file systems, with room (build/space.py)
CACHE_FREE = 10 << 30  # the stage cache's default cap


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok, warn, fail
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_tools() -> list[Finding]:
    """Every host tool the composer runs (composer/core/tools.py), by its Debian package."""
    missing: dict[str, list[str]] = {}
    for tool, package in sorted(tools.PACKAGES.items()):
        if shutil.which(tool) is None and shutil.which(tool, path=SEARCH) is None:
            missing.setdefault(package, []).append(tool)
    if not missing:
        return [Finding("tools", "ok", f"all {len(tools.PACKAGES)} host tools found")]
    return [
        Finding(
            f"tool {', '.join(names)}",
            "fail",
            "not found",
            f"apt-get install {package} (or scripts/setup.sh)",
        )
        for package, names in sorted(missing.items())
    ]


def check_swtpm() -> Finding:
    """swtpm answers (the TPM every boot gets)."""
    try:
        done = tools.run(["swtpm", "--version"], capture=True)
    except ComposerError as exc:
        return Finding(
            "swtpm", "fail", str(exc).splitlines()[0], "apt-get install swtpm swtpm-tools"
        )
    return Finding("swtpm", "ok", done.stdout.decode(errors="replace").strip().splitlines()[0])


def check_firmware(machine: str | None = None) -> list[Finding]:
    """A UEFI firmware descriptor (QEMU's firmware.json) for this architecture, with and
    without Secure Boot."""
    arch = ARCHES.get(machine or platform.machine())
    if arch is None:
        return [Finding("firmware", "fail", f"no QEMU setup for {platform.machine()}", "")]
    found = []
    for secure_boot in (False, True):
        fw, rejected = find_firmware(arch, arch.machine, secure_boot)
        what = f"firmware ({'Secure Boot' if secure_boot else 'plain'})"
        if fw is None:
            found.append(
                Finding(
                    what,
                    "fail",
                    f"no descriptor matches {arch.qemu} {arch.machine} ({len(rejected)} skipped)",
                    "apt-get install ovmf qemu-system-x86"
                    if arch.name == "x86_64"
                    else "apt-get install qemu-efi-aarch64 qemu-system-arm",
                )
            )
        else:
            found.append(Finding(what, "ok", f"{fw.descriptor.name}: {fw.code}"))
    return found


def check_space(role: str, directory: Path, want: int, variable: str) -> Finding:
    """Whether a file can be made where ``role`` goes (made if missing, as a build would),
    and how much space is free there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        st = os.statvfs(directory)
    except OSError as exc:
        return Finding(
            role, "fail", f"{directory}: {exc.strerror or exc}", f"set {variable} to a directory"
        )
    free = st.f_bavail * st.f_frsize
    detail = f"{directory}: {human_size(free)} free"
    if free < want:
        return Finding(
            role,
            "warn",
            detail + f" (a default build wants {human_size(want)})",
            f"free space there or set {variable}",
        )
    return Finding(role, "ok", detail)


def check_kvm(machine: str | None = None) -> Finding:
    """A fresh KVM probe: /dev/kvm and a firmware boot under KVM (judge/kvm.py); none when
    DPS_COMPOSER_ACCEL=tcg says boots use TCG anyway."""
    if paths.accel() == "tcg":
        return Finding("kvm", "ok", f"not probed: {paths.ACCEL_ENV}=tcg (boots use TCG)")
    arch = ARCHES.get(machine or platform.machine())
    fw = find_firmware(arch, arch.machine, False)[0] if arch else None
    if fw is None:
        return Finding("kvm", "warn", "not probed: no firmware to probe with")
    try:
        probe = probe_kvm(fw)
    except (ComposerError, OSError) as exc:
        return Finding("kvm", "warn", f"not probed: {exc}")
    if probe.usable:
        return Finding("kvm", "ok", f"usable ({probe.reason})")
    return Finding(
        "kvm",
        "warn",
        f"unusable, boots fall back to TCG (minutes instead of seconds): {probe.reason}",
        "enable virtualization (VT-x/AMD-V, nested virtualization in a VM), load kvm_intel "
        "or kvm_amd, make /dev/kvm read-write for this user; or set DPS_COMPOSER_ACCEL=tcg "
        "to skip the probe",
    )


def check_guestfs() -> Finding:
    """python3-guestfs, seen by this Python (a venv made with --system-site-packages)."""
    if importlib.util.find_spec("guestfs") is None:
        return Finding(
            "libguestfs",
            "fail",
            "the Python module guestfs is not importable",
            "apt-get install python3-guestfs; make the venv with --system-site-packages "
            "(scripts/setup.sh)",
        )
    return Finding("libguestfs", "ok", "python3-guestfs importable")


CHECKS: tuple[Callable[[], list[Finding]], ...] = (
    check_tools,
    check_firmware,
    lambda: [check_swtpm(), check_guestfs()],
    lambda: [
        check_space("work space", paths.work_dir(), WORK_FREE, paths.WORK_DIR_ENV),
        check_space("cache space", paths.cache_dir(), CACHE_FREE, paths.CACHE_DIR_ENV),
    ],
    lambda: [check_kvm()],
)


def run_checks(show: Callable[[Finding], None]) -> list[Finding]:
    """Every check, each finding shown as it is made (the KVM probe takes seconds)."""
    findings = []
    for check in CHECKS:
        for finding in check():
            show(finding)
            findings.append(finding)
    return findings
