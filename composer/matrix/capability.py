"""What a worker host can do, found out on the worker at the start of a run: root, the build's
and the boot's tools, UEFI firmware, and whether QEMU gets KVM or falls back to TCG (the
probe the boot itself uses, cached for a day). Cells are only sent to workers that can run
them; a matrix whose cells no worker can run stops at once with what each worker lacks."""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

from composer.core.errors import ComposerError
from composer.image.firmware import find_firmware
from composer.judge.kvm import cached_probe_kvm
from composer.spec.arch import get_arch

BUILD_TOOLS = ("mmdebstrap", "sfdisk", "mkfs.vfat", "mcopy", "qemu-img", "tar")
BOOT_TOOLS = ("qemu-system-x86_64", "swtpm")
ARCH = "x86_64"


def probe() -> dict[str, Any]:
    """This host's capabilities as plain data (sent back to the client)."""
    root = os.geteuid() == 0
    missing_build = [t for t in BUILD_TOOLS if shutil.which(t) is None]
    missing_boot = [t for t in BOOT_TOOLS if shutil.which(t) is None]
    firmware, _ = find_firmware(get_arch(ARCH), "q35", secure_boot=False)
    accel, accel_reason = "none", "no firmware or QEMU to probe with"
    if firmware is not None and not missing_boot:
        try:
            kvm = cached_probe_kvm(firmware)
            accel, accel_reason = ("kvm" if kvm.usable else "tcg"), kvm.reason
        except (ComposerError, OSError) as exc:
            accel, accel_reason = "tcg", f"KVM probe failed: {exc}"
    lacks_build = ([] if root else ["root"]) + missing_build
    lacks_boot = missing_boot + ([] if firmware else ["UEFI firmware (OVMF)"])
    return {
        "host": socket.gethostname(),
        "root": root,
        "build": not lacks_build,
        "boot": not lacks_boot,
        "lacks_build": lacks_build,
        "lacks_boot": lacks_boot,
        "accel": accel,
        "accel_reason": accel_reason,
    }


def able(capabilities: dict[str, dict[str, Any]], kind: str) -> list[str]:
    """The workers (addresses) that can run tasks of ``kind`` ("build" or "boot")."""
    return sorted(addr for addr, caps in capabilities.items() if caps.get(kind))


def why_not(capabilities: dict[str, dict[str, Any]], kind: str) -> str:
    return "; ".join(
        f"{addr} ({caps.get('host', '?')}) lacks {', '.join(caps.get(f'lacks_{kind}', [])) or '?'}"
        for addr, caps in sorted(capabilities.items())
    )
