"""Blueprint -> the values the kickstart template uses. Pure; every blueprint string is
checked here (naming its key) and quoted by the template's finalize (quote.quote)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from composer.arch import get_arch
from composer.blueprint import KICKSTART_DISTRO, Blueprint, layout_of
from composer.customizations import is_crypt_hash
from composer.kickstart.quote import KickstartError, Verbatim, checked, comment, word
from composer.layout import LayoutErrors
from composer.units import MiB

UKI_PACKAGE = {"fedora": "kernel-uki-virt"}  # Fedora's generic VM UKI (SPEC-NOTES §4)
SDBOOT_PACKAGE = {"fedora": "systemd-boot-unsigned"}
UKI_DIRECT_PACKAGE = {"fedora": "uki-direct"}  # kernel-install plugin: UEFI boot entries
_LIST_ITEM = re.compile(r"^[A-Za-z0-9:_.@-]+$")  # group and unit names inside a,b,c lists


@dataclass(frozen=True)
class Target:
    family: str  # "fedora"
    release: int

    @property
    def pykickstart_version(self) -> str:
        return f"F{self.release}"


def target_of(bp: Blueprint) -> Target:
    m = KICKSTART_DISTRO.match(bp.distro)
    if m is None:
        raise KickstartError(
            f"distro: {bp.distro!r}: kickstarts are for anaconda installs of Fedora; "
            "use distro = 'fedora-42' (or another Fedora release)"
        )
    return Target("fedora", int(m.group(1)))


def _csv(key: str, items: tuple[str, ...]) -> str:
    for i, item in enumerate(items):
        if not _LIST_ITEM.match(item):
            raise KickstartError(
                f"{key}[{i}]: {item!r} is not a plain name (letters, digits, :_.@-)"
            )
    return ",".join(items)


def _users(bp: Blueprint) -> list[dict[str, Any]]:
    users = []
    for i, u in enumerate(bp.customizations.user):
        key = f"customizations.user[{i}]"
        pw = u.password
        users.append(
            {
                "name": word(f"{key}.name", u.name),
                "gecos": checked(f"{key}.description", u.description) or None,
                "password": checked(f"{key}.password", pw) if pw is not None else None,
                "crypted": pw is not None and is_crypt_hash(pw),
                "groups": _csv(f"{key}.groups", u.groups) or None,
                "home": checked(f"{key}.home", u.home) if u.home else None,
                "shell": checked(f"{key}.shell", u.shell) if u.shell else None,
                "uid": u.uid,
                "gid": u.gid,
            }
        )
    return users


def _sshkeys(bp: Blueprint) -> list[dict[str, str]]:
    c = bp.customizations
    keys = [
        {"user": word(f"customizations.user[{i}].name", u.name),
         "key": word(f"customizations.user[{i}].key", u.key)}
        for i, u in enumerate(c.user) if u.key
    ]  # fmt: skip
    keys += [
        {"user": word(f"customizations.sshkey[{i}].user", k.user),
         "key": word(f"customizations.sshkey[{i}].key", k.key)}
        for i, k in enumerate(c.sshkey)
    ]  # fmt: skip
    return keys


def _parts(bp: Blueprint) -> list[dict[str, Any]]:
    """One `part` line per layout partition; the ESP where anaconda wants it (/boot/efi)."""
    try:
        layout = layout_of(bp)
    except LayoutErrors as exc:
        raise KickstartError("; ".join(f"{'.'.join(map(str, e.key))}: {e.message}"
                                       for e in exc.errors)) from None
    parts = []
    for p in layout.partitions:
        size = max(1, p.size // MiB)
        if p.designator == "esp":
            parts.append({"mountpoint": "/boot/efi", "fstype": "efi", "size": size})
        elif p.filesystem == "swap":
            parts.append({"mountpoint": "swap", "fstype": None, "size": size})
        else:
            mp = checked("customizations.disk.partitions.mountpoint", p.mountpoint)
            parts.append({"mountpoint": mp, "fstype": p.filesystem, "size": size,
                          "grow": p.designator == "root"})  # fmt: skip
    return parts


def _files(bp: Blueprint) -> list[dict[str, Any]]:
    out = []
    for i, f in enumerate(bp.customizations.files):
        key = f"customizations.files[{i}]"
        out.append(
            {
                "path": word(f"{key}.path", f.path),
                "data": base64.b64encode(f.data.encode()).decode(),
                "mode": checked(f"{key}.mode", f.mode) if f.mode else None,
                "owner": ":".join(checked(f"{key}.{k}", str(v)) for k, v in
                                  (("user", f.user), ("group", f.group)) if v is not None) or None,
            }
        )  # fmt: skip
    return out


def _directories(bp: Blueprint) -> list[dict[str, Any]]:
    return [
        {"path": word(f"customizations.directories[{i}].path", d.path),
         "mode": checked(f"customizations.directories[{i}].mode", d.mode) if d.mode else None}
        for i, d in enumerate(bp.customizations.directories)
    ]  # fmt: skip


def build_context(
    bp: Blueprint, *, source: str, fixup_script: str, uki_repo: str | None = None
) -> dict[str, Any]:
    target = target_of(bp)
    arch = get_arch(bp.architecture)
    c = bp.customizations
    tz = c.timezone.timezone
    lang = c.locale.languages[0] if c.locale.languages else "en_US.UTF-8"
    cmdline = " ".join(f"{bp.boot.cmdline} {c.kernel.append}".split())
    return {
        "title": comment(f"{bp.name} {bp.version}"),
        "description": comment(bp.description),
        "source": comment(source),
        "ks_version": Verbatim(target.pykickstart_version),
        "release": target.release,
        "arch": arch.name,
        "loader": bp.boot.loader,
        "timeout": bp.boot.timeout if bp.boot.timeout is not None else 1,
        "hostname": c.hostname,
        "lang": word("customizations.locale.languages[0]", lang),
        "keyboard": word("customizations.locale.keyboard", c.locale.keyboard or "us"),
        "timezone": word("customizations.timezone.timezone", tz) if tz else "UTC",
        "ntpservers": [word(f"customizations.timezone.ntpservers[{i}]", s)
                       for i, s in enumerate(c.timezone.ntpservers)],  # fmt: skip
        "groups": [{"name": word(f"customizations.group[{i}].name", g.name), "gid": g.gid}
                   for i, g in enumerate(c.group)],  # fmt: skip
        "users": _users(bp),
        "sshkeys": _sshkeys(bp),
        "enabled": _csv("customizations.services.enabled", c.services.enabled) or None,
        "disabled": _csv("customizations.services.disabled", c.services.disabled) or None,
        "masked": list(c.services.masked),
        "files": _files(bp),
        "directories": _directories(bp),
        "parts": _parts(bp),
        "packages": [p.name for p in bp.packages],
        "uki_package": UKI_PACKAGE[target.family],
        "loader_packages": {"systemd-boot": [SDBOOT_PACKAGE[target.family]],
                            "uki-direct": [UKI_DIRECT_PACKAGE[target.family]],
                            "grub2": [f"grub2-efi-{arch.efi}", f"shim-{arch.efi}"]}[bp.boot.loader],
        "grub_pair": [f"grub2-efi-{arch.efi}", f"shim-{arch.efi}"],
        "uki_repo": checked("--uki-repo", uki_repo) if uki_repo else None,
        "cmdline": checked("boot.cmdline", cmdline),
        "fixup_script": Verbatim(fixup_script),
    }  # fmt: skip
