"""RPM packages from a staged tree with rpmbuild (binary only: the spec's %install copies the
tree), reproducibly: SOURCE_DATE_EPOCH as build time and mtime clamp, a fixed build host."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from composer.core import tools
from composer.core.files import atomic_path
from composer.core.workdir import scratch_dir, work_parent
from composer.uki_virt.debpkg import clamp_mtimes


@dataclass(frozen=True)
class RpmSpec:
    name: str
    version: str  # no '-' (RPM reserves it for version-release)
    release: str
    summary: str
    description: str
    arch: str  # x86_64, aarch64, noarch
    license: str = "GPL-2.0-only"
    requires: Sequence[str] = ()
    provides: Sequence[str] = ()
    scripts: Mapping[str, str] = field(default_factory=dict)  # "posttrans": shell text, …
    ghosts: Sequence[str] = ()  # %ghost paths: owned, not shipped


def rpm_version(text: str) -> str:
    """A Debian/upstream version made usable as an RPM Version or Release ('-' and ':' out)."""
    return text.replace(":", "_").replace("-", "_")


def spec_text(spec: RpmSpec, files: Sequence[str]) -> str:
    """The spec: no sources, %install copies the staged tree from %{stage}."""
    head = [
        f"Name: {spec.name}",
        f"Version: {spec.version}",
        f"Release: {spec.release}",
        f"Summary: {spec.summary}",
        f"License: {spec.license}",
        f"BuildArch: {spec.arch}" if spec.arch == "noarch" else "",
        "AutoReqProv: no",
        *[f"Requires: {r}" for r in spec.requires],
        *[f"Provides: {p}" for p in spec.provides],
    ]
    body = [
        "",
        "%description",
        spec.description,
        "",
        "%install",
        "mkdir -p %{buildroot}",
        "cp -a %{stage}/. %{buildroot}/",
        "",
    ]
    for name, text in sorted(spec.scripts.items()):
        body += [f"%{name}", text.rstrip("\n"), ""]
    body += [
        "%files",
        *[f if f.startswith("%dir ") else f'"{f}"' for f in files],
        *[f'%ghost "{g}"' for g in spec.ghosts],
        "",
    ]
    return "\n".join(line for line in head if line) + "\n" + "\n".join(body)


def build_rpm(tree: Path, spec: RpmSpec, out_dir: Path, *, epoch: int) -> Path:
    """Build ``spec`` with the files of ``tree`` (paths relative to it are the package's)."""
    clamp_mtimes(tree, epoch)  # rpm only clamps mtimes newer than SOURCE_DATE_EPOCH
    entries = sorted(tree.rglob("*"))
    files = [
        "/" + p.relative_to(tree).as_posix() for p in entries if p.is_symlink() or not p.is_dir()
    ]
    files += [  # empty directories (mount points such as /boot/efi) are owned as %dir
        "%dir /" + p.relative_to(tree).as_posix()
        for p in entries
        if p.is_dir() and not p.is_symlink() and not any(p.iterdir())
    ]
    with scratch_dir("rpmbuild", work_parent()) as top:
        spec_path = top / f"{spec.name}.spec"
        spec_path.write_text(spec_text(spec, files))
        defines = {
            "_topdir": str(top),
            "stage": str(tree.resolve()),
            "_buildhost": "reproducible",
            "use_source_date_epoch_as_buildtime": "1",
            "clamp_mtime_to_source_date_epoch": "1",
            # zstd, as Fedora's own packages; level 1, as the payload is a UKI, compressed
            # already (gzip -9 took 1 s of a cold build's critical path to save 1%)
            "_binary_payload": "w1.zstdio",
            "__os_install_post": "%{nil}",  # no strip, no brp scripts: ship the files as they are
            "debug_package": "%{nil}",
        }
        argv: list[str | os.PathLike[str]] = ["rpmbuild", "-bb", "--quiet"]
        for key, value in defines.items():
            argv += ["--define", f"{key} {value}"]
        if spec.arch != "noarch":
            argv += ["--target", spec.arch]
        argv.append(spec_path)
        tools.run(argv, env={"SOURCE_DATE_EPOCH": str(epoch)})
        built = list((top / "RPMS").rglob("*.rpm"))
        if len(built) != 1:
            raise FileNotFoundError(f"rpmbuild made {len(built)} packages for {spec.name}")
        out = out_dir / built[0].name
        with atomic_path(out) as tmp_out:
            shutil.copyfile(built[0], tmp_out)
    return out
