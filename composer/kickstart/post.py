"""%post shell for the blueprint keys that kickstart has no command for. Every blueprint value
reaches the shell as one single-quoted word (after ``checked``: no line breaks), multi-line
data as base64; the snippets are Verbatim lines for the template."""

from __future__ import annotations

import base64
import shlex

from composer.blueprint.model import Blueprint
from composer.kickstart.quote import Verbatim, checked

SSHD_DROP_IN = "/etc/ssh/sshd_config.d/50-dps-composer.conf"
ANCHORS = "/etc/pki/ca-trust/source/anchors"


def sh(key: str, value: object) -> str:
    """``value`` as one shell word (a KickstartError naming ``key`` if a line cannot hold it)."""
    return shlex.quote(checked(key, str(value)))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_file(path: str, data: str, mode: str | None = None) -> list[str]:
    """Lines that write ``data`` to ``path`` (already a quoted shell word)."""
    lines = [f'mkdir -p "$(dirname {path})"', f"printf '%s' {b64(data)} | base64 -d >{path}"]
    return [*lines, f"chmod {mode} {path}"] if mode else lines


def files(bp: Blueprint) -> list[str]:
    out = []
    for i, d in enumerate(bp.customizations.directories):
        key = f"customizations.directories[{i}]"
        path = sh(f"{key}.path", d.path)
        out.append(f"mkdir -p {path}" if d.ensure_parents else f"mkdir {path} 2>/dev/null || "
                   f"test -d {path}")  # fmt: skip
        if d.mode:
            out.append(f"chmod {sh(f'{key}.mode', d.mode)} {path}")
        out += _chown(key, d.user, d.group, path)
    for i, f in enumerate(bp.customizations.files):
        key = f"customizations.files[{i}]"
        path = sh(f"{key}.path", f.path)
        out += write_file(path, f.data, sh(f"{key}.mode", f.mode) if f.mode else None)
        out += _chown(key, f.user, f.group, path)
    return out


def _chown(key: str, user: str | int | None, group: str | int | None, path: str) -> list[str]:
    if user is None and group is None:
        return []
    owner = ("" if user is None else str(user)) + ("" if group is None else f":{group}")
    return [f"chown {sh(f'{key}.user', owner)} {path}"]


def services(bp: Blueprint) -> list[str]:
    return [f"systemctl mask {sh(f'customizations.services.masked[{i}]', u)}"
            for i, u in enumerate(bp.customizations.services.masked)]  # fmt: skip


def cacerts(bp: Blueprint) -> list[str]:
    """As osbuild's org.osbuild.pki.update-ca-trust stage: anchors, then update-ca-trust."""
    certs = bp.customizations.cacerts.pem_certs
    out = []
    for i, pem in enumerate(certs):
        out += write_file(f"{ANCHORS}/dps-composer-{i}.pem", pem.strip() + "\n", "0644")
    return [*out, "update-ca-trust extract"] if certs else []


def repositories(bp: Blueprint) -> list[str]:
    """/etc/yum.repos.d/<filename>, as osbuild writes them (armored keys under
    /etc/pki/rpm-gpg)."""
    out = []
    for i, r in enumerate(bp.customizations.repositories):
        key = f"customizations.repositories[{i}]"
        opts = r.dnf_options()
        keys = [k for k in r.gpgkeys if "://" in k]
        for n, armored in enumerate(k for k in r.gpgkeys if "://" not in k):
            path = f"/etc/pki/rpm-gpg/RPM-GPG-KEY-dps-composer-{r.id}-{n}"
            out += write_file(sh(f"{key}.id", path), armored.strip() + "\n", "0644")
            keys.append(f"file://{path}")
        if keys:
            opts["gpgkey"] = " ".join(keys)
        text = "\n".join([f"[{r.id}]", *(f"{k}={v}" for k, v in opts.items())]) + "\n"
        out += write_file(sh(f"{key}.filename", f"/etc/yum.repos.d/{r.repo_file}"), text,
                          "0644")  # fmt: skip
    return out


def sshd(bp: Blueprint) -> list[str]:
    settings = bp.customizations.sshd.settings()
    text = "".join(f"{k} {v}\n" for k, v in settings)
    return write_file(SSHD_DROP_IN, text, "0600") if settings else []


def machine_id(bp: Blueprint) -> list[str]:
    mid = bp.image.machine_id
    return [f"printf '%s\\n' {sh('image.machine_id', mid)} >/etc/machine-id"] if mid else []


def block(lines: list[str]) -> Verbatim:
    return Verbatim("\n".join(lines))
