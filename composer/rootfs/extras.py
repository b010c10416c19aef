"""The rest of the customizations and the layout's traces in the root tree: files and
directories, locale and keyboard, NTP servers, CA certificates, the machine ID, fstab lines
for partitions DPS does not discover, and the systemd-repart definition that grows the root
partition at first boot."""

from __future__ import annotations

import os
from pathlib import Path

from composer import DATA
from composer.customizations import CaCerts, Customizations, Locale
from composer.errors import ComposerError
from composer.fs_customizations import Directory, File
from composer.plan import Plan
from composer.repositories import Repository
from composer.rootfs.chroot import run_in

REPART_ROOT = "usr/lib/repart.d/50-dps-composer-root.conf"
REPART_TEXT = (
    "# dps-composer: the root partition is the last on the disk; at boot systemd-repart\n"
    "# grows it into the free space a bigger disk gives it, and systemd-growfs-root grows\n"
    "# its file system (the partition carries the DPS grow-file-system flag).\n"
    "[Partition]\nType=root\n"
)


def apply(tree: Path, plan: Plan, log: Path) -> None:
    c: Customizations = plan.customizations
    dnf = plan.distribution.family == "dnf"
    for d in c.directories:
        make_directory(tree, d)
    for f in c.files:
        write_file(tree, f)
    set_locale(tree, c.locale, log, generate=not dnf)
    if c.timezone.ntpservers:
        servers = " ".join(c.timezone.ntpservers)
        _write(
            tree / "etc/systemd/timesyncd.conf.d/50-dps-composer.conf", f"[Time]\nNTP={servers}\n"
        )
        if dnf:  # Fedora ships timesyncd in systemd-udev, not enabled by a preset
            run_in(tree, ["systemctl", "enable", "systemd-timesyncd.service"], log=log)
    add_ca_certs(tree, c.cacerts, log, fedora=dnf)
    sshd_settings(tree, c.sshd.settings())
    if dnf:
        repo_files(tree, c.repositories)
    if plan.machine_id:
        _write(tree / "etc/machine-id", plan.machine_id + "\n", 0o444)
    if plan.fstab:
        with open(tree / "etc/fstab", "a") as fh:
            fh.write("# Partitions DPS does not discover (linux-generic or no-auto):\n")
            fh.write("".join(line + "\n" for line in plan.fstab))
    if plan.grow_root:
        _write(tree / REPART_ROOT, REPART_TEXT)
    timeouts = DATA / "initrd/50-dps-composer-timeouts.conf"  # the initrd has the same
    _write(tree / "usr/lib/systemd/system.conf.d/50-dps-composer.conf", timeouts.read_text())


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _ids(tree: Path, table: str) -> dict[str, int]:
    out = {}
    for line in (tree / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            out[fields[0]] = int(fields[2])
    return out


def _owner(tree: Path, value: str | int | None, table: str, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    ids = _ids(tree, table)
    if value not in ids:
        raise ComposerError(
            f"customizations.{what}: {table} has no '{value}' in the image "
            f"(add it under [[customizations.{'user' if table == 'passwd' else 'group'}]])"
        )
    return ids[value]


def _inside(tree: Path, path: str, what: str) -> Path:
    target = tree / path.lstrip("/")
    parent = target.parent.resolve()
    if not parent.is_relative_to(tree.resolve()) and parent.exists():
        raise ComposerError(f"customizations.{what}: {path} leads outside the image tree")
    return target


def make_directory(tree: Path, d: Directory) -> None:
    target = _inside(tree, d.path, "directories")
    if not target.parent.is_dir() and not d.ensure_parents:
        raise ComposerError(
            f"customizations.directories: the parent of {d.path} does not exist; "
            "set ensure_parents = true"
        )
    target.mkdir(parents=True, exist_ok=True)
    os.chown(target, _owner(tree, d.user, "passwd", "directories"),
             _owner(tree, d.group, "group", "directories"))  # fmt: skip
    target.chmod(int(d.mode, 8) if d.mode else 0o755)


def write_file(tree: Path, f: File) -> None:
    target = _inside(tree, f.path, "files")
    if target.is_dir():
        raise ComposerError(f"customizations.files: {f.path} is a directory in the image")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.write_text(f.data)
    os.chown(target, _owner(tree, f.user, "passwd", "files"),
             _owner(tree, f.group, "group", "files"))  # fmt: skip
    target.chmod(int(f.mode, 8) if f.mode else 0o644)


def set_locale(tree: Path, locale: Locale, log: Path, *, generate: bool = True) -> None:
    """LANG from the first language; on Debian the others are generated with locale-gen
    (Fedora's glibc-langpack packages, added by the plan, carry them ready-made)."""
    if locale.languages:
        lang = locale.languages[0]
        wanted = [x for x in locale.languages if x.split(".")[0] not in ("C", "POSIX")]
        if wanted and generate:
            supported = tree / "usr/share/i18n/SUPPORTED"
            known = supported.read_text().splitlines() if supported.exists() else []
            lines = []
            for name in wanted:
                match = next((k for k in known if k.split()[0] == name), None)
                if match is None:
                    raise ComposerError(
                        f"customizations.locale.languages: {name!r} is not a locale glibc "
                        "supports (see /usr/share/i18n/SUPPORTED), e.g. 'en_US.UTF-8'"
                    )
                lines.append(match)
            _write(tree / "etc/locale.gen", "\n".join(lines) + "\n")
            run_in(tree, ["locale-gen"], log=log)
        set_variable(tree, "etc/locale.conf", "LANG", lang)
        if generate:  # Debian's own place too (Fedora reads only /etc/locale.conf)
            set_variable(tree, "etc/default/locale", "LANG", lang)
    if locale.keyboard:
        set_variable(tree, "etc/vconsole.conf", "KEYMAP", locale.keyboard)


def _inside_tree(tree: Path, rel: str) -> Path:
    """``rel`` with symlinks resolved as inside the tree (Debian links /etc/vconsole.conf to
    default/keyboard and /etc/default/locale to ../locale.conf)."""
    path = tree / rel
    for _ in range(8):
        if not path.is_symlink():
            return path
        target = os.readlink(path)
        path = tree / target.lstrip("/") if target.startswith("/") else path.parent / target
    raise ComposerError(f"{rel}: too many levels of symbolic links in the image")


def set_variable(tree: Path, rel: str, key: str, value: str) -> None:
    """Set ``KEY=value`` in a shell-style settings file, keeping its other lines."""
    path = _inside_tree(tree, rel)
    lines = path.read_text().splitlines() if path.is_file() else []
    kept = [ln for ln in lines if not ln.strip().startswith(f"{key}=")]
    _write(path, "\n".join([*kept, f"{key}={value}"]) + "\n")


def add_ca_certs(tree: Path, ca: CaCerts, log: Path, *, fedora: bool = False) -> None:
    """Debian: update-ca-certificates; Fedora: the anchors directory and update-ca-trust (as
    osbuild's org.osbuild.pki.update-ca-trust stage)."""
    if not ca.pem_certs:
        return
    for i, pem in enumerate(ca.pem_certs):
        where = ("etc/pki/ca-trust/source/anchors/dps-composer-{}.pem" if fedora
                 else "usr/local/share/ca-certificates/dps-composer-{}.crt")  # fmt: skip
        _write(tree / where.format(i), pem.strip() + "\n")
    run_in(tree, ["update-ca-trust", "extract"] if fedora else ["update-ca-certificates"], log=log)


SSHD_DROP_IN = "etc/ssh/sshd_config.d/50-dps-composer.conf"


def sshd_settings(tree: Path, settings: list[tuple[str, str]]) -> None:
    """[customizations.sshd] as an sshd_config.d drop-in (Debian's and Fedora's sshd_config
    include sshd_config.d/*.conf first: the first value of a keyword wins)."""
    if settings:
        _write(tree / SSHD_DROP_IN, "".join(f"{k} {v}\n" for k, v in settings))


def repo_files(tree: Path, repos: tuple[Repository, ...]) -> None:
    """osbuild writes [[customizations.repositories]] into the image's /etc/yum.repos.d
    (osbuild/blueprint pkg/blueprint/repository_customizations.go, getFilename)."""
    for r in repos:
        opts = r.dnf_options()
        keys = [k for k in r.gpgkeys if "://" in k]
        for n, key in enumerate(k for k in r.gpgkeys if "://" not in k):  # armored key text
            path = f"etc/pki/rpm-gpg/RPM-GPG-KEY-dps-composer-{r.id}-{n}"
            _write(tree / path, key.strip() + "\n")
            keys.append(f"file:///{path}")
        if keys:
            opts["gpgkey"] = " ".join(keys)
        sections = [f"[{r.id}]", *(f"{k}={v}" for k, v in opts.items())]
        _write(tree / "etc/yum.repos.d" / r.repo_file, "\n".join(sections) + "\n")
