"""A sealed volume the TPM refused, seen on the console (``boot``'s serial scanner): the unlock
units of sealed volumes log to the console (composer/rootfs/sealed.py), so the verdict can name
the volume and systemd-cryptsetup's reason even when the boot ends in the emergency shell that a
failed required mount leads to, and before it."""

from __future__ import annotations

import re
from collections import deque

# systemd's status line when an unlock unit fails (the unit name may be cut with an ellipsis;
# its description, "Cryptography Setup for NAME", is not) and systemd-cryptsetup's own words
_UNLOCK_FAILED = re.compile(
    r"Failed to start .*?(?:systemd-cryptsetup@([\w-]+)\.service|Cryptography Setup for ([\w-]+))"
)
_CRYPTSETUP_SAYS = re.compile(r"systemd-cryptsetup\[\d+\]: (.*)")


class UnlockWatch:
    """Turns the console's "Failed to start … Cryptography Setup for NAME" into a fatal
    ``sealed-NAME`` sign whose words are what systemd-cryptsetup said just before (the unlock
    units of sealed volumes log to the console, composer/rootfs/sealed.py): a volume the TPM
    refused fails the boot there, before the emergency shell a required mount leads to."""

    def __init__(self, keep: int = 6) -> None:
        self.said: deque[str] = deque(maxlen=keep)

    def feed(self, line: str) -> tuple[str, str] | None:
        """(check name, detail) when ``line`` is a failed unlock; remembers cryptsetup's words."""
        says = _CRYPTSETUP_SAYS.search(line)
        if says:
            if says.group(1) not in self.said:
                self.said.append(says.group(1).strip())
            return None
        failed = _UNLOCK_FAILED.search(line)
        if failed is None:
            return None
        name = failed.group(1) or failed.group(2)
        reasons = "; ".join(r for r in self.said if not r.startswith("Set cipher")) or "no reason"
        return f"sealed-{name}", (
            f"/{name}: not unlocked: the TPM refused the boot chain's PCR 11 policy "
            f"(systemd-cryptsetup: {reasons}); it failed without asking for a passphrase"
        )
