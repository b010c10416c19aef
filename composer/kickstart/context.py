"""Blueprint -> the values the kickstart template uses. Pure; every blueprint string is
checked here (naming its key) and quoted by the template's finalize (quote.quote) or, in
%post, by post.sh. Every key is either rendered (a command, or %post where kickstart has
none) or refused by name for kickstarts (composer/plan/keytable.py and ``problems``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from composer.blueprint.model import KICKSTART_DISTRO, Blueprint
from composer.core.errors import Problem
from composer.kickstart import accounts, disk, post
from composer.kickstart.quote import KickstartError, Verbatim, checked, comment, word
from composer.plan.judgement import judge
from composer.spec.arch import get_arch
from composer.target.distros import Distro

UKI_PACKAGE = {"fedora": "kernel-uki-virt"}  # Fedora's generic VM UKI
SDBOOT_PACKAGE = {"fedora": "systemd-boot-unsigned"}
UKI_DIRECT_PACKAGE = {"fedora": "uki-direct"}  # kernel-install plugin: UEFI boot entries
# keys that describe build outputs: named in a comment, nothing for an installer to do
BUILD_ONLY = ("image.size", "image.formats", "image.qcow2_compression", "image.seed",
              "validate")  # fmt: skip


@dataclass(frozen=True)
class Target:
    family: str  # "fedora"
    release: int

    @property
    def pykickstart_version(self) -> str:
        return f"F{self.release}"

    @property
    def distro(self) -> Distro:
        return Distro(f"fedora-{self.release}", "dnf", "fedora", str(self.release), "")


def target_of(bp: Blueprint) -> Target:
    m = KICKSTART_DISTRO.match(bp.distro)
    if m is None:
        raise KickstartError(
            f"distro: {bp.distro!r}: kickstarts are for anaconda installs of Fedora; "
            "use distro = 'fedora-42' (or another Fedora release)"
        )
    return Target("fedora", int(m.group(1)))


def _packages(bp: Blueprint) -> list[Verbatim]:
    """`%packages` lines: name or name-version (dnf reads a glob there), @group. pykickstart
    takes these lines as they are (no shell words): the names and globs were validated
    (composer/blueprint/packages.py: letters, digits and _.+-:@/*?[])."""
    out = []
    for table in ("packages", "modules"):
        for i, p in enumerate(getattr(bp, table)):
            spec = p.name if not p.pinned else f"{p.name}-{p.version}"
            out.append(Verbatim(word(f"{table}[{i}]", spec)))
    out += [Verbatim(word(f"groups[{i}].name", f"@{g.name}")) for i, g in enumerate(bp.groups)]
    if bp.customizations.firewall != type(bp.customizations.firewall)():
        out.append(Verbatim("firewalld"))
    return out


def _firewall(bp: Blueprint) -> dict[str, Any] | None:
    fw = bp.customizations.firewall
    if fw == type(fw)():
        return None
    key = "customizations.firewall"
    return {
        "ports": accounts.names_csv(f"{key}.ports", list(fw.ports)) or None,
        "services": accounts.names_csv(f"{key}.services.enabled", list(fw.services.enabled))
        or None,
        "remove": accounts.names_csv(f"{key}.services.disabled", list(fw.services.disabled))
        or None,
    }


def _zones(bp: Blueprint) -> list[str]:
    """firewalld zones (no kickstart option): firewall-offline-cmd in %post."""
    out = []
    for i, z in enumerate(bp.customizations.firewall.zones):
        key = f"customizations.firewall.zones[{i}]"
        zone = f" --zone={post.sh(f'{key}.name', z.name)}" if z.name else ""
        out += [f"firewall-offline-cmd{zone} --add-source={post.sh(f'{key}.sources[{k}]', s)}"
                for k, s in enumerate(z.sources)]  # fmt: skip
    return out


def _repos(bp: Blueprint) -> list[dict[str, Any]]:
    """`repo` lines for the install (the image's .repo files come in %post)."""
    out = []
    for i, r in enumerate(bp.customizations.repositories):
        key = f"customizations.repositories[{i}]"
        if not r.enabled:
            continue
        kind, url = next((k, v) for k, v in (("baseurl", r.baseurls[0] if r.baseurls else None),
                         ("mirrorlist", r.mirrorlist), ("metalink", r.metalink)) if v)  # fmt: skip
        out.append({"name": word(f"{key}.id", r.id), "kind": Verbatim(kind),
                    "url": checked(f"{key}.{kind}s" if kind == "baseurl" else f"{key}.{kind}", url),
                    "noverifyssl": r.sslverify is False})  # fmt: skip
    return out


def problems(bp: Blueprint, target: Target) -> list[Problem]:
    """Everything a kickstart cannot honour, by key (the target's facts, the key table,
    what anaconda cannot make)."""
    verdict = judge(bp, target.distro, "kickstart")
    _, parts = disk.layout(bp)
    return [*verdict.problems, *disk.problems(parts)]


def build_context(
    bp: Blueprint, *, source: str, fixup_script: str, uki_repo: str | None = None
) -> dict[str, Any]:
    target = target_of(bp)
    verdict = judge(bp, target.distro, "kickstart")
    arch = get_arch(bp.architecture)
    c = bp.customizations
    tz = c.timezone.timezone
    langs = c.locale.languages or ("en_US.UTF-8",)
    cmdline = " ".join(f"{bp.boot.cmdline} {c.kernel.append}".split())
    lay, parts = disk.layout(bp)
    users, create = accounts.users(bp, target.distro)
    setup = [*accounts.post(bp, target.distro), *post.files(bp), *post.services(bp),
             *post.cacerts(bp), *post.repositories(bp), *post.sshd(bp), *_zones(bp),
             *post.machine_id(bp), *disk.gpt_edits(parts)]  # fmt: skip
    unused = [k for k in BUILD_ONLY if _set(bp, k)]
    return {
        "title": comment(f"{bp.name} {bp.version}"),
        "description": comment(bp.description),
        "source": comment(source),
        "notes": [comment(n) for n in verdict.notes],
        "build_only": comment(", ".join(unused)) if unused else None,
        "ks_version": Verbatim(target.pykickstart_version),
        "release": target.release,
        "arch": arch.name,
        "loader": bp.boot.loader,
        "timeout": bp.boot.timeout if bp.boot.timeout is not None else 1,
        "sdboot_timeout": bp.boot.timeout,
        "hostname": c.hostname,
        "lang": word("customizations.locale.languages[0]", langs[0]),
        "addsupport": accounts.names_csv("customizations.locale.languages", list(langs[1:])) or None,
        "keyboard": word("customizations.locale.keyboard", c.locale.keyboard or "us"),
        "timezone": word("customizations.timezone.timezone", tz) if tz else "UTC",
        "ntpservers": [word(f"customizations.timezone.ntpservers[{i}]", s)
                       for i, s in enumerate(c.timezone.ntpservers)],  # fmt: skip
        "firewall": _firewall(bp),
        "rootpw": accounts.rootpw(bp),
        "repos": _repos(bp),
        "groups": accounts.groups(bp, target.distro, create),
        "users": users,
        "sshkeys": accounts.sshkeys(bp),
        "enabled": accounts.names_csv("customizations.services.enabled",
                                 list(c.services.enabled)) or None,
        "disabled": accounts.names_csv("customizations.services.disabled",
                                  list(c.services.disabled)) or None,
        "setup": post.block(setup),
        "parts": disk.part_lines(parts),
        "exclude_weakdeps": bp.minimal,
        "packages": _packages(bp),
        "uki_package": UKI_PACKAGE[target.family],
        "loader_packages": {"systemd-boot": [SDBOOT_PACKAGE[target.family]],
                            "uki-direct": [UKI_DIRECT_PACKAGE[target.family]],
                            "grub2": [f"grub2-efi-{arch.efi}", f"shim-{arch.efi}"]}[bp.boot.loader],
        "grub_pair": [f"grub2-efi-{arch.efi}", f"shim-{arch.efi}"],
        "uki_repo": checked("--uki-repo", uki_repo) if uki_repo else None,
        "cmdline": checked("boot.cmdline", cmdline),
        "fixup_script": Verbatim(fixup_script),
        "disk_size": lay.disk_size,
        "install_disk": _install_disk(bp),
    }  # fmt: skip


def _install_disk(bp: Blueprint) -> str | None:
    """osbuild's installation_device (/dev/sda, /dev/disk/by-id/...) as anaconda names a disk:
    sda, or the by-id path as it is."""
    device = bp.customizations.installation_device
    if device in (None, ""):
        return None
    key = "customizations.installation_device"
    if not isinstance(device, str) or not device.startswith("/dev/"):
        raise KickstartError(f"{key}: {device!r} is not a device path such as /dev/vda")
    name = device.removeprefix("/dev/") if device.count("/") == 2 else device
    return word(key, name)


def _set(bp: Blueprint, key: str) -> bool:
    table, _, field = key.partition(".")
    model = bp.image if table == "image" else bp.validate_
    return bool(field in model.model_fields_set) if field else bool(model.model_fields_set)
