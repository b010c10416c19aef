"""Judge what the guest mounted against the manifest's partitions (pure).

``dps-mounts``: every partition with a mount point is mounted there (swap: enabled) from the
partition the manifest names (partition UUID and type), by discovery (no fstab line), or by
its fstab line where the composer wrote one (linux-generic, no-auto); read-only where flagged.
``root-fills-disk``: after first-boot growth the root partition ends at the end of the disk
and its file system fills it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from composer.core.units import MiB, human_size
from composer.spec import dps

CheckTuple = tuple[str, bool, str]
GROW_SLACK = 2 * MiB  # backup GPT and alignment after the last partition
FS_FILL = 0.85  # file-system size over partition size counted as "fills it" (ext4/xfs overhead)


def _name(type_uuid: str | None) -> str:
    try:
        known = dps.by_uuid(type_uuid) if type_uuid else None
    except ValueError:
        known = None
    return known.name if known else str(type_uuid)


def _fstab_mentions(fstab: Sequence[str], p: dict[str, Any]) -> list[str]:
    """The fstab lines for ``p``: by mount point or UUID; a swap line by its UUID when the
    image has several swap partitions (DPS enables the first only, fstab the others)."""
    ids = {p["uuid"].lower(), str(p.get("fs_uuid") or p["uuid"]).lower()}
    hits = []
    for line in fstab:
        words = str(line).split()
        named = bool(words) and any(i in words[0].lower() for i in ids)
        if p["filesystem"] == "swap":
            if len(words) > 2 and words[2] == "swap" and (named or "=" not in words[0]):
                hits.append(str(line))
        elif len(words) > 1 and (words[1] == p["mountpoint"] or named):
            hits.append(str(line))
    return hits


def _one(p: dict[str, Any], guest: dict[str, Any]) -> tuple[bool, str]:
    mp, want_uuid, want_type = p["mountpoint"], p["uuid"].lower(), p["type_uuid"].lower()
    fstab_lines = _fstab_mentions(guest.get("fstab") or [], p)
    how = "fstab" if p.get("fstab") else "discovery"
    if p.get("fstab") and not fstab_lines:
        return False, f"{mp}: expected an fstab line (not discoverable), found none"
    if not p.get("fstab") and fstab_lines:
        return False, f"{mp}: has an fstab line ({fstab_lines[0]}); DPS partitions need none"
    if p["filesystem"] == "swap":
        swaps = guest.get("swaps") or []
        hit = next((s for s in swaps if str(s.get("partuuid") or "").lower() == want_uuid), None)
        if hit is None:
            seen = ", ".join(str(s.get("source")) for s in swaps) or "none"
            return False, f"swap: partition {want_uuid} not enabled (swaps: {seen})"
        return True, f"swap {hit.get('source')} {_name(hit.get('parttype'))} by {how}"
    mounts = [m for m in guest.get("mounts") or [] if m.get("target") == mp]
    if not mounts:
        return False, f"{mp}: not mounted"
    m = mounts[-1]
    got_uuid = str(m.get("partuuid") or "").lower()
    got_type = str(m.get("parttype") or "").lower()
    if got_uuid != want_uuid or got_type != want_type:
        return False, (
            f"{mp}: {m.get('source')} (partition {got_uuid or '?'}, {_name(got_type)}), expected "
            f"partition {want_uuid} ({_name(want_type)})"
        )
    opts = str(m.get("options") or "").split(",")
    if p.get("read_only") and "ro" not in opts:
        return False, f"{mp}: mounted read-write, the partition is read-only"
    ro = " ro" if "ro" in opts else ""
    return True, f"{mp} {m.get('source')} {m.get('fstype')} {_name(got_type)}{ro} by {how}"


def dps_mount_checks(
    guest: dict[str, Any],
    partitions: Sequence[dict[str, Any]],
    grow_root: bool,
    after_root: int = 0,
) -> list[CheckTuple]:
    """``after_root``: bytes of partitions made at first boot after the root partition."""
    results = [_one(p, guest) for p in partitions if p.get("mountpoint")]
    failed = [d for ok, d in results if not ok]
    detail = "; ".join(failed) if failed else "; ".join(d for _, d in results)
    checks: list[CheckTuple] = [("dps-mounts", not failed, detail)]
    if grow_root:
        checks.append(root_fills_disk(guest, after_root))
    return checks


def root_fills_disk(guest: dict[str, Any], after_root: int = 0) -> CheckTuple:
    disk = guest.get("disk") or {}
    part = disk.get("root_partition") or {}
    size, start, psize = disk.get("size"), part.get("start"), part.get("size")
    fs = disk.get("root_fs_size")
    if not (isinstance(size, int) and isinstance(start, int) and isinstance(psize, int)
            and isinstance(fs, int)):  # fmt: skip
        return "root-fills-disk", False, f"the guest did not report disk and root sizes: {disk}"
    gap = size - (start + psize)
    ok = 0 <= gap <= GROW_SLACK + after_root and fs >= FS_FILL * psize
    detail = (
        f"/ is {human_size(fs)} on a {human_size(psize)} partition ending "
        f"{human_size(gap) if gap else '0 B'} before the end of the {human_size(size)} disk"
    )
    if after_root:
        detail += f" (room left for {human_size(after_root)} of sealed volumes)"
    if not ok:
        detail += " (expected the root partition and file system to fill the disk)"
    return "root-fills-disk", ok, detail
