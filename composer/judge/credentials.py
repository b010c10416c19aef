"""System credentials for a boot test, passed the way systemd reads them from a VM: SMBIOS type 11
strings ``io.systemd.credential:NAME=VALUE`` (systemd.system-credentials(7), smbios-type-11(7)).

Besides the check's own credential, a boot answers every question systemd-firstboot would ask
on the console, so that an image made without those settings (mkosi's default images stop at
"Please configure your system!") boots on instead of waiting for a person. Each credential is
only honoured when the image has not configured that setting itself (systemd-firstboot(1)), so
an image that did keeps its own.
"""

from __future__ import annotations

from collections.abc import Mapping

CHECK_CREDENTIAL = "dps-composer.check"

# systemd-firstboot's credentials (systemd.system-credentials(7)): locale, keymap, time zone and
# the root password. "No root password" here means what systemd-firstboot does when its prompt
# is left empty: the account is locked ("!*", systemd's PASSWORD_LOCKED_AND_INVALID), so no one
# can log in as root with a password. An empty hash would instead allow a password-less login.
FIRSTBOOT: Mapping[str, str] = {
    "firstboot.locale": "C.UTF-8",
    "firstboot.keymap": "us",
    "firstboot.timezone": "UTC",
    "passwd.hashed-password.root": "!*",
}


def boot_credentials(firstboot: bool = True, profile: bool = False) -> dict[str, str]:
    """The credentials a boot test passes: the check's ("profile": its record also says which
    units took longest), and the first-boot answers."""
    creds = {CHECK_CREDENTIAL: "profile" if profile else "1"}
    if firstboot:
        creds.update(FIRSTBOOT)
    return creds


def smbios_args(credentials: Mapping[str, str]) -> list[str]:
    """``-smbios type=11,value=io.systemd.credential:NAME=VALUE`` for each credential; a comma
    in a value is doubled, as QEMU's option parser wants it."""
    args: list[str] = []
    for name, value in credentials.items():
        text = f"io.systemd.credential:{name}={value}".replace(",", ",,")
        args += ["-smbios", f"type=11,value={text}"]
    return args
