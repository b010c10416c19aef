"""A root tree that tries to make the build write outside it, and a sentinel to catch it.

The tree holds symbolic links, absolute and relative, that on the host lead to a sentinel
directory beside the tree (as ``var/run -> /run`` leads a Debian tree's writes to the host's
/run). Everything outside the tree is fingerprinted before a stage runs and compared after:
names, types, modes, owners, times, link targets and the bytes of every file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

SENTINEL_FILES = {
    "resolv.conf": "nameserver 192.0.2.1\n",
    "hosts": "127.0.0.1 sentinel\n",
    "keyboard": "KEYMAP=sentinel\n",
    "locale": "LANG=sentinel\n",
    "machine-id": "0123456789abcdef0123456789abcdef\n",
    "zoneinfo/Europe/Berlin": "TZif sentinel\n",
    "victim/.ssh/authorized_keys": "ssh-ed25519 AAAAsentinel victim\n",
    "data/keep": "sentinel data\n",
    "EFI/Linux/host.efi": "MZ sentinel\n",
}


def _up(tree: Path, link: str) -> str:
    """A relative link target from ``tree/link`` that climbs to the host's / and then down
    to the sentinel: on the host it reaches the sentinel, inside the tree it cannot."""
    depth = link.count("/") + len(tree.parts)
    return "../" * depth


@dataclass(frozen=True)
class Hostile:
    root: Path  # the directory holding tree/ and sentinel/
    tree: Path
    sentinel: Path


def make_hostile_tree(base: Path) -> Hostile:
    """``base/tree`` with escaping links, ``base/sentinel`` with the files they reach."""
    tree, sentinel = base / "tree", base / "sentinel"
    for rel, text in SENTINEL_FILES.items():
        (sentinel / rel).parent.mkdir(parents=True, exist_ok=True)
        (sentinel / rel).write_text(text)
    os.chmod(sentinel / "data", 0o750)
    for d in ("etc/default", "etc/ssh", "home", "usr/lib/modules/6.1.0-test", "usr/bin", "var/lib",
              "root", "efi", "var/lib/uki-virt", "usr/share"):  # fmt: skip
        (tree / d).mkdir(parents=True, exist_ok=True)
    uid, gid = os.getuid(), os.getgid()
    (tree / "etc/passwd").write_text(
        f"root:x:0:0:root:/root:/bin/sh\n"
        f"victim:x:{uid}:{gid}::/srv/victim:/bin/sh\n"  # home through an absolute link
        f"runner:x:{uid}:{gid}::/var/run/runner:/bin/sh\n"  # Debian's var/run, here hostile
        f"climber:x:{uid}:{gid}::/opt/victim:/bin/sh\n"  # through a relative link
    )
    (tree / "etc/group").write_text(f"root:x:0:\nsudo:x:27:\nwidget:x:{gid}:\n")
    (tree / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (tree / "etc/gshadow").write_text("root:*::\nsudo:*::\n")
    (tree / "etc/ssh/sshd_config").write_text("# test\n")
    links = {
        # absolute targets: a chroot reads them relative to the tree, the host does not
        "var/run": str(sentinel),
        "srv": str(sentinel),
        "etc/hosts": str(sentinel / "hosts"),
        "etc/default/locale": str(sentinel / "locale"),
        "usr/share/zoneinfo": str(sentinel / "zoneinfo"),
        "etc/machine-id": str(sentinel / "machine-id"),
        "efi/EFI": str(sentinel / "EFI"),
        # relative targets that climb out of the tree
        "var/lock": "SENTINEL",
        "opt": "SENTINEL",
        "etc/resolv.conf": "SENTINEL/resolv.conf",
        "etc/vconsole.conf": "SENTINEL/keyboard",
        "etc/systemd": "SENTINEL",
        "mnt": "SENTINEL/data",
    }
    rel_sentinel = str(sentinel).lstrip("/")
    for link, target in links.items():
        if target.startswith("SENTINEL"):
            target = _up(tree, link) + target.replace("SENTINEL", rel_sentinel, 1)
        (tree / link).parent.mkdir(parents=True, exist_ok=True)
        (tree / link).symlink_to(target)
    # the uki-virt record names a file through the absolute efi/EFI link
    (tree / "var/lib/uki-virt/6.1.0-test").write_text("/efi/EFI/Linux/host.efi\n")
    return Hostile(base, tree, sentinel)


Fingerprint = dict[str, tuple[object, ...]]


def fingerprint(base: Path, skip: Path) -> Fingerprint:
    """Every entry under ``base`` except ``skip`` (the tree): what a write would change."""
    found: Fingerprint = {}
    for dirpath, dirnames, filenames in os.walk(base):
        here = Path(dirpath)
        if here == skip:
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in [*dirnames, *filenames]:
            path = here / name
            st = os.lstat(path)
            detail: object = None
            if stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                detail = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(base))] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, detail
            )  # fmt: skip
    return found
