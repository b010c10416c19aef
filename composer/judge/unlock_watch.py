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
# systemd-cryptsetup's question when no token opened the volume and it may ask (no headless):
# "Please enter recovery key for disk DESCRIPTION (NAME):" (systemd v257 cryptsetup.c,
# get_password, friendly_disk_name)
_ASKS = re.compile(r"Please enter [\w ]+ for disk (?:.*\(([\w-]+)\)|([\w-]+)):")


class UnlockWatch:
    """Turns the console's "Failed to start … Cryptography Setup for NAME" (or, for a volume
    with a recovery key, systemd-cryptsetup asking for it) into a fatal
    ``sealed-NAME`` sign whose words are what systemd-cryptsetup said just before (the unlock
    units of sealed volumes log to the console, composer/rootfs/sealed.py): a volume the TPM
    refused fails the boot there, before the emergency shell a required mount leads to."""

    def __init__(self, keep: int = 6) -> None:
        self.said: deque[str] = deque(maxlen=keep)
        self.reported: set[str] = set()

    def feed(self, line: str, complete: bool = True) -> tuple[str, str] | None:
        """(check name, detail) when ``line`` is a failed unlock (once per volume); remembers
        cryptsetup's words. A prompt waits without a line end: feed unfinished lines too."""
        says = _CRYPTSETUP_SAYS.search(line)
        if says:
            if complete and says.group(1) not in self.said:
                self.said.append(says.group(1).strip())
            return None
        asks = _ASKS.search(line)
        found = asks or _UNLOCK_FAILED.search(line)
        if found is None:
            return None
        name = found.group(1) or found.group(2)
        if name in self.reported:  # a prompt is seen again while it waits (an unfinished line)
            return None
        self.reported.add(name)
        reasons = "; ".join(r for r in self.said if not r.startswith("Set cipher")) or "no reason"
        then = (
            "it asks for the volume's recovery key on the console"
            if asks
            else "it failed without asking for a passphrase"
        )
        return f"sealed-{name}", (
            f"/{name}: not unlocked: the TPM refused the boot chain's PCR 11 policy "
            f"(systemd-cryptsetup: {reasons}); {then}"
        )
