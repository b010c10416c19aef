"""The rest of the customizations and the layout's traces in the root tree: files and
directories, locale and keyboard, NTP servers, CA certificates, the machine ID, fstab lines
for partitions DPS does not discover, and the systemd-repart definition that grows the root
partition at first boot."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from composer import DATA
from composer.blueprint.customizations import CaCerts, Customizations, Locale
from composer.blueprint.files import Directory, File
from composer.blueprint.repositories import Repository
from composer.core.chroot import run_in
from composer.core.errors import ComposerError
from composer.plan.plan import Plan
from composer.rootfs import sealed
from composer.rootfs.intree import InTreeError, Tree

REPART_ROOT = "/usr/lib/repart.d/50-dps-composer-root.conf"
REPART_TEXT = (
    "# dps-composer: the root partition is the last on the disk; at boot systemd-repart\n"
    "# grows it into the free space a bigger disk gives it, and systemd-growfs-root grows\n"
    "# its file system (the partition carries the DPS grow-file-system flag).\n"
    "[Partition]\nType=root\n"
)


def apply(tree: Path, plan: Plan) -> None:
    c: Customizations = plan.customizations
    dnf = plan.distribution.family == "dnf"
    with Tree(tree) as t:
        for i, d in enumerate(c.directories):
            with _key(f"customizations.directories[{i}]"):
                make_directory(t, d)
        for i, f in enumerate(c.files):
            with _key(f"customizations.files[{i}]"):
                write_file(t, f)
        set_locale(t, c.locale, generate=not dnf)
        if c.timezone.ntpservers:
            servers = " ".join(c.timezone.ntpservers)
            t.write(
                "/etc/systemd/timesyncd.conf.d/50-dps-composer.conf", f"[Time]\nNTP={servers}\n"
            )
            if dnf:  # Fedora ships timesyncd in systemd-udev, not enabled by a preset
                run_in(t.root, ["systemctl", "enable", "systemd-timesyncd.service"])
        add_ca_certs(t, c.cacerts, fedora=dnf)
        sshd_settings(t, c.sshd.settings())
        if dnf:
            repo_files(t, c.repositories)
        if plan.machine_id:
            t.write("/etc/machine-id", plan.machine_id + "\n", 0o444)
        if plan.fstab:
            fstab = t.read_text("/etc/fstab", default="")
            lines = "".join(line + "\n" for line in plan.fstab)
            t.write(
                "/etc/fstab",
                f"{fstab}# Partitions DPS does not discover (linux-generic or no-auto):\n{lines}",
            )
        if plan.grow_root:
            t.write(REPART_ROOT, REPART_TEXT)
        sealed.apply(t, plan)
        timeouts = DATA / "initrd/50-dps-composer-timeouts.conf"  # the initrd has the same
        t.write("/usr/lib/systemd/system.conf.d/50-dps-composer.conf", timeouts.read_text())


@contextlib.contextmanager
def _key(key: str) -> Iterator[None]:
    """An image-tree error names the blueprint key it came from."""
    try:
        yield
    except InTreeError as exc:
        raise InTreeError(f"{key}: {exc}") from None


def _tree(tree: Tree | Path) -> contextlib.AbstractContextManager[Tree]:
    return contextlib.nullcontext(tree) if isinstance(tree, Tree) else Tree(tree)


def _ids(t: Tree, table: str) -> dict[str, int]:
    out = {}
    for line in t.read_text(f"/etc/{table}", default="").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            out[fields[0]] = int(fields[2])
    return out


def _owner(t: Tree, value: str | int | None, table: str, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    ids = _ids(t, table)
    if value not in ids:
        raise ComposerError(
            f"customizations.{what}: {table} has no '{value}' in the image "
            f"(add it under [[customizations.{'user' if table == 'passwd' else 'group'}]])"
        )
    return ids[value]


def _owners(t: Tree, item: Directory | File, what: str) -> tuple[int, int]:
    return _owner(t, item.user, "passwd", what), _owner(t, item.group, "group", what)


def make_directory(tree: Tree | Path, d: Directory) -> None:
    """The directory at ``d.path`` inside the tree (links on the way followed inside it)."""
    with _tree(tree) as t:
        parent = d.path.rsplit("/", 1)[0] or "/"
        if not t.is_dir(parent) and not d.ensure_parents:
            raise ComposerError(
                f"customizations.directories: the parent of {d.path} does not exist; "
                "set ensure_parents = true"
            )
        owner = _owners(t, d, "directories")
        t.makedirs(d.path)
        t.set_mode(d.path, int(d.mode, 8) if d.mode else 0o755, owner)


def write_file(tree: Tree | Path, f: File) -> None:
    """The file at ``f.path`` inside the tree; a link there is replaced, not written through."""
    with _tree(tree) as t:
        owner = _owners(t, f, "files")
        t.write(f.path, f.data, int(f.mode, 8) if f.mode else 0o644, owner)


def set_locale(tree: Tree | Path, locale: Locale, *, generate: bool = True) -> None:
    """LANG from the first language; on Debian the others are generated with locale-gen
    (Fedora's glibc-langpack packages, added by the plan, carry them ready-made)."""
    with _tree(tree) as t:
        if locale.languages:
            lang = locale.languages[0]
            wanted = [x for x in locale.languages if x.split(".")[0] not in ("C", "POSIX")]
            if wanted and generate:
                known = t.read_text("/usr/share/i18n/SUPPORTED", default="").splitlines()
                lines = []
                for name in wanted:
                    match = next((k for k in known if k.split()[:1] == [name]), None)
                    if match is None:
                        raise ComposerError(
                            f"customizations.locale.languages: {name!r} is not a locale glibc "
                            "supports (see /usr/share/i18n/SUPPORTED), e.g. 'en_US.UTF-8'"
                        )
                    lines.append(match)
                t.write("/etc/locale.gen", "\n".join(lines) + "\n")
                run_in(t.root, ["locale-gen"])
            set_variable(t, "/etc/locale.conf", "LANG", lang)
            if generate:  # Debian's own place too (Fedora reads only /etc/locale.conf)
                set_variable(t, "/etc/default/locale", "LANG", lang)
        if locale.keyboard:
            set_variable(t, "/etc/vconsole.conf", "KEYMAP", locale.keyboard)


def set_variable(t: Tree, path: str, key: str, value: str) -> None:
    """Set ``KEY=value`` in a shell-style settings file, keeping its other lines; a link
    (Debian links /etc/vconsole.conf to default/keyboard and /etc/default/locale to
    ../locale.conf) is followed inside the tree."""
    text = t.read_text(path) if t.is_file(path) else ""
    kept = [ln for ln in text.splitlines() if not ln.strip().startswith(f"{key}=")]
    t.write_through(path, "\n".join([*kept, f"{key}={value}"]) + "\n")


def add_ca_certs(tree: Tree | Path, ca: CaCerts, *, fedora: bool = False) -> None:
    """Debian: update-ca-certificates; Fedora: the anchors directory and update-ca-trust (as
    osbuild's org.osbuild.pki.update-ca-trust stage)."""
    if not ca.pem_certs:
        return
    with _tree(tree) as t:
        for i, pem in enumerate(ca.pem_certs):
            where = ("/etc/pki/ca-trust/source/anchors/dps-composer-{}.pem" if fedora
                     else "/usr/local/share/ca-certificates/dps-composer-{}.crt")  # fmt: skip
            t.write(where.format(i), pem.strip() + "\n")
        argv = ["update-ca-trust", "extract"] if fedora else ["update-ca-certificates"]
        run_in(t.root, argv)


SSHD_DROP_IN = "/etc/ssh/sshd_config.d/50-dps-composer.conf"


def sshd_settings(t: Tree, settings: list[tuple[str, str]]) -> None:
    """[customizations.sshd] as an sshd_config.d drop-in (Debian's and Fedora's sshd_config
    include sshd_config.d/*.conf first: the first value of a keyword wins)."""
    if settings:
        t.write(SSHD_DROP_IN, "".join(f"{k} {v}\n" for k, v in settings))


def repo_files(t: Tree, repos: tuple[Repository, ...]) -> None:
    """osbuild writes [[customizations.repositories]] into the image's /etc/yum.repos.d
    (osbuild/blueprint pkg/blueprint/repository_customizations.go, getFilename); armored
    keys given inline go to /etc/pki/rpm-gpg, which the .repo file names."""
    for r in repos:
        urls = []
        for n, key in enumerate(r.inline_keys):
            path = f"/etc/pki/rpm-gpg/RPM-GPG-KEY-dps-composer-{r.id}-{n}"
            t.write(path, key.strip() + "\n")
            urls.append(f"file://{path}")
        opts = r.dnf_options(urls)
        sections = [f"[{r.id}]", *(f"{k}={v}" for k, v in opts.items())]
        t.write(f"/etc/yum.repos.d/{r.repo_file}", "\n".join(sections) + "\n")
