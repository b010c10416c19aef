"""What a target's root tree has at known places, for plan-time checks of blueprint paths:
the places something else is mounted over at boot, and the directory links its base
packages make.

Hidden at boot: /run is a tmpfs (systemd's file-hierarchy(7)), and Debian 13 and Fedora
mount a tmpfs on /tmp too (tmp.mount; systemd's tmpfiles.d/tmp.conf also empties it at
boot); /dev, /proc and /sys get devtmpfs, proc and sysfs. Whatever an image has below them
is never seen by the booted system, so a blueprint file, directory or home there is refused
rather than written where nobody will find it. ``/var/run`` and ``/var/lock`` are links to
``/run`` and ``/run/lock`` on every target (file-hierarchy(7) calls them compatibility
links), so they count as /run.

Directory links, by distribution (as their trees have them, and as the build reads them:
inside the tree): Debian 13's merged /usr (``/bin``, ``/sbin``, ``/lib``, ``/lib64`` into
``usr/``; base-files) and ``/var/run -> /run``, ``/var/lock -> /run/lock``; Fedora and
CentOS Stream, from their ``filesystem`` package: the same merged /usr links,
``/var/run -> ../run``, ``/var/lock -> ../run/lock``, ``/usr/tmp -> ../var/tmp`` and
``/var/mail -> spool/mail``, and since Fedora 42 ``/usr/sbin -> bin``. Paths of files and
directories may cross them (``/lib/systemd/system/x.service`` is
``/usr/lib/systemd/system/x.service``); a mount point may not: the partition would be
mounted on the link's target while the build split the tree at the link.
"""

from __future__ import annotations

MOUNTED_AT_BOOT = {
    "/run": "a tmpfs at boot",
    "/var/run": "a link to /run, a tmpfs at boot",
    "/var/lock": "a link to /run/lock, a tmpfs at boot",
    "/tmp": "a tmpfs at boot (tmp.mount), emptied by systemd-tmpfiles",
    "/dev": "devtmpfs at boot",
    "/proc": "the proc file system at boot",
    "/sys": "sysfs at boot",
}
_MERGED_USR = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}
_DEBIAN = {**_MERGED_USR, "/var/run": "/run", "/var/lock": "/run/lock"}
_RPM = {
    **_MERGED_USR,
    "/var/run": "../run",
    "/var/lock": "../run/lock",
    "/usr/tmp": "../var/tmp",
    "/var/mail": "spool/mail",
}
_RPM_SBIN_MERGED = {**_RPM, "/usr/sbin": "bin"}


def directory_links(distro: str) -> dict[str, str]:
    """The directory links (path -> target) the distribution's root tree has."""
    if distro.startswith("debian-"):
        return _DEBIAN
    release = distro.rpartition("-")[2]
    if distro.startswith("fedora-") and release.isdigit() and int(release) >= 42:
        return _RPM_SBIN_MERGED
    return _RPM


def _under(path: str, place: str) -> bool:
    return path == place or path.startswith(place + "/")


def hidden_at_boot(path: str) -> str | None:
    """Why a file or directory at ``path`` would not be seen by the booted system."""
    for place, what in MOUNTED_AT_BOOT.items():
        if _under(path, place):
            return (
                f"{path} is under {place}, {what}: the booted system never sees what the "
                "image has there; create it at boot instead (a tmpfiles.d entry written "
                "with [[customizations.files]], e.g. /etc/tmpfiles.d/NAME.conf)"
            )
    return None


def crossed_link(distro: str, path: str) -> str | None:
    """The link (``/var/run -> /run``) a mount point at ``path`` would cross, if any."""
    for link, target in directory_links(distro).items():
        if _under(path, link):
            return f"{link} -> {target}"
    return None


def every_distribution_link(path: str) -> str | None:
    """The link a mount point at ``path`` would cross in every supported distribution's tree
    (``/var/run -> /run``), judged before the distribution is known; None otherwise."""
    found = [crossed_link(d, path) for d in ("debian-13", "fedora-40", "fedora-42")]
    return found[0] if all(found) else None
