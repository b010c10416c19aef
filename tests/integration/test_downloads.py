"""A package download as a build makes it (apt-get from the build's own index, into a fresh
archive directory): its progress reaches the stage's plain lines, from 0 % to 100 % of the
bytes apt fetched, and apt's status lines stay out of the build log."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.cli.progress import PlainReports
from composer.core import paths, progress
from composer.core.log import log_file
from composer.core.units import human_size
from composer.rootfs import pkgset
from composer.spec.arch import get_arch

from .conftest import manifest

pytestmark = pytest.mark.integration


def test_a_package_download_shows_its_progress(
    default_image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = manifest(default_image)["packages"]
    arch = get_arch("x86_64")
    wanted = [pkgset.ResolvedPackage(n, installed[n], "amd64") for n in ("tpm2-tools", "fdisk")]
    state = pkgset.state_dir(paths.cache_dir(), "trixie", arch)  # the default build's index
    archives, log = tmp_path / "archives", tmp_path / "build.log"
    log.write_text("")
    capsys.readouterr()
    with log_file(log), progress.shown_by(PlainReports("package-check")):
        debs = pkgset.download(wanted, state=state, arch=arch, archives=archives)
    size = human_size(sum(d.stat().st_size for d in debs))
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines[0] == f"stage package-check: downloading 2 packages: 0% of {size}", lines
    assert lines[-1] == f"stage package-check: downloading 2 packages: 100% of {size}", lines
    text = log.read_text()
    assert "Get:1 " in text and "dlstatus:" not in text
    assert sorted(d.name for d in archives.glob("*.deb")) == sorted(p.file_name for p in wanted)
