""".deb packages from a staged tree with dpkg-deb, reproducibly: every mtime clamped to
SOURCE_DATE_EPOCH, members sorted, owner root:root, fixed compression."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from composer.core import tools
from composer.core.files import atomic_path

# Field order of a binary control file (deb-control(5)); others follow in the given order.
_ORDER = (
    "Package",
    "Version",
    "Architecture",
    "Maintainer",
    "Installed-Size",
    "Depends",
    "Provides",
    "Section",
    "Priority",
    "Homepage",
    "Description",
)


def control_text(fields: Mapping[str, str]) -> str:
    """A control file: known fields in their usual order; a multi-line Description gets its
    continuation lines indented (an empty one as ' .')."""
    keys = [k for k in _ORDER if k in fields] + [k for k in fields if k not in _ORDER]
    lines = []
    for key in keys:
        value = fields[key]
        first, *rest = value.split("\n")
        lines.append(f"{key}: {first}")
        lines += [f" {r}" if r.strip() else " ." for r in rest]
    return "\n".join(lines) + "\n"


def installed_size_kib(tree: Path) -> int:
    """Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, DEBIAN/ excluded."""
    total = 0
    for path in tree.rglob("*"):
        if "DEBIAN" in path.relative_to(tree).parts[:1]:
            continue
        total += (path.lstat().st_size + 1023) // 1024 if path.is_file() else 1
    return total


def clamp_mtimes(tree: Path, epoch: int) -> None:
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def build_deb(
    tree: Path,
    fields: Mapping[str, str],
    scripts: Mapping[str, str],
    out_dir: Path,
    *,
    epoch: int,
) -> Path:
    """Write DEBIAN/control and the maintainer ``scripts`` (postinst, postrm, …) into ``tree``
    and build ``<Package>_<Version>_<Architecture>.deb`` in ``out_dir``."""
    control_dir = tree / "DEBIAN"
    shutil.rmtree(control_dir, ignore_errors=True)
    control_dir.mkdir(mode=0o755, parents=True)
    all_fields = {**fields, "Installed-Size": str(installed_size_kib(tree))}
    (control_dir / "control").write_text(control_text(all_fields))
    for name, text in scripts.items():
        script = control_dir / name
        script.write_text(text)
        script.chmod(0o755)
    for path in [tree, *tree.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    clamp_mtimes(tree, epoch)
    version = fields["Version"].split(":", 1)[-1]  # the file name carries no epoch
    out = out_dir / f"{fields['Package']}_{version}_{fields['Architecture']}.deb"
    # data.tar stored, not compressed: the payload is a UKI, compressed already (gzip -9 took
    # 1 s of a cold build's critical path to save 1%), and every dpkg reads an uncompressed one
    with atomic_path(out) as tmp:
        tools.run(
            ["dpkg-deb", "--root-owner-group", "-Znone", "--build", tree, tmp],
            env={"SOURCE_DATE_EPOCH": str(epoch)},
        )
    return out
