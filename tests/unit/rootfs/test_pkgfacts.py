"""Reading .deb files (composer/rootfs/pkgfacts.py): in this process for the compressions
Python reads, through dpkg-deb for the others, with the same facts either way; a damaged
package is one clear error naming the file."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from composer.core import tools
from composer.core.errors import ComposerError
from composer.core.lifetime import Stopped, StopScope, stoppable
from composer.rootfs import resolution
from composer.rootfs.pkgfacts import PackageFacts, deb_paths, deb_text, read_deb

UNIT = (
    "[Unit]\nDescription=demo\n[Service]\nExecStart=/usr/sbin/demod\n[Install]\nAlias=dd.service\n"
)
POSTINST = "#!/bin/sh\nset -e\nadduser --system --group --home /var/lib/demo demo\n"
WANT = PackageFacts(
    units=("dd.service", "demo-alias.service", "demo.service"),
    users=("demo", "sysdemo"),
    groups=("demo", "sysdemo"),
    files=("/usr/bin/demo", "/usr/bin/demo-hard", "/usr/sbin/demod"),
)


def make_deb(tmp: Path, compression: str) -> Path:
    """A package with a unit, an alias link, a sysusers file, a hard link and a postinst."""
    root = tmp / f"pkg-{compression}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: demo\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: demo\n"
    )
    (root / "DEBIAN/postinst").write_text(POSTINST)
    (root / "DEBIAN/postinst").chmod(0o755)
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "demo.service").write_text(UNIT)
    (units / "demo-alias.service").symlink_to("demo.service")
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    (root / "usr/lib/sysusers.d/demo.conf").write_text('u sysdemo - "demo" /var/lib/sysdemo\n')
    for d in ("usr/bin", "usr/sbin", "usr/share/demo"):
        (root / d).mkdir(parents=True)
    (root / "usr/sbin/demod").write_text("#!/bin/sh\n")
    (root / "usr/bin/demo").write_text("#!/bin/sh\n")
    os.link(root / "usr/bin/demo", root / "usr/bin/demo-hard")
    (root / "usr/share/demo/README").write_text("read me\n")
    deb = tmp / f"demo-{compression}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


@pytest.mark.parametrize("compression", ["xz", "gzip", "none", "zstd"])
def test_every_compression_gives_the_same_facts(tmp_path: Path, compression: str) -> None:
    deb = make_deb(tmp_path, compression)
    assert read_deb(deb) == WANT
    paths = deb_paths(deb)
    assert "/usr/bin/demo-hard" in paths and "/usr/lib/systemd/system/demo-alias.service" in paths
    assert "/usr/share/demo/README" in paths and "/usr/share/demo" not in paths  # no directories
    assert deb_text(deb, "/usr/share/demo/README") == "read me\n"
    assert deb_text(deb, "/usr/share/demo/missing") == ""


def test_python_reads_what_it_can_and_dpkg_deb_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []
    real = tools.run

    def run(argv: list[str], **kwargs: Any) -> Any:
        started.append([str(a) for a in argv])
        return real(argv, **kwargs)

    monkeypatch.setattr(tools, "run", run)
    read_deb(make_deb(tmp_path, "xz"))
    assert started == []
    read_deb(make_deb(tmp_path, "zstd"))  # Python 3.11 has no zstd: dpkg-deb does it
    assert [a[:2] for a in started] == [
        ["dpkg-deb", "--fsys-tarfile"],
        ["dpkg-deb", "--ctrl-tarfile"],
    ]


def test_a_negative_member_size_is_refused_not_looped_on(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "xz")
    data = bytearray(deb.read_bytes())
    data[8 + 48 : 8 + 58] = b"-60".ljust(10)  # debian-binary's size: back to its own header
    deb.write_bytes(data)
    with pytest.raises(ComposerError) as err:
        read_deb(deb)
    assert str(deb) in str(err.value)


@pytest.mark.parametrize("damage", ["cut in its header", "cut in half", "bytes changed"])
def test_a_damaged_package_is_one_error_naming_it(tmp_path: Path, damage: str) -> None:
    deb = make_deb(tmp_path, "xz")
    data = bytearray(deb.read_bytes())
    half = len(data) // 2
    if damage == "bytes changed":
        data[-200:-150] = bytes(b ^ 0xFF for b in data[-200:-150])  # inside data.tar.xz
    deb.write_bytes(
        data[:100]
        if damage == "cut in its header"
        else data[:half]
        if damage == "cut in half"
        else data
    )
    with pytest.raises(ComposerError) as err:
        read_deb(deb)
    assert str(deb) in str(err.value)


def test_facts_are_read_two_at_a_time_and_stop_with_the_stage(tmp_path: Path) -> None:
    debs = [make_deb(tmp_path / str(i), c) for i, c in enumerate(["xz", "gzip", "none"])]
    found = resolution._read_facts(debs, tmp_path / "memo")
    assert [dataclasses.asdict(f) for f in found] == [dataclasses.asdict(WANT)] * 3
    assert len(list((tmp_path / "memo").iterdir())) == 3  # remembered per package file
    scope = StopScope()
    scope.stop()
    with stoppable(scope), pytest.raises(Stopped):
        resolution._read_facts(debs, tmp_path / "memo2")
    assert not (tmp_path / "memo2").exists()
