"""composer.measure against systemd 257's own tools (systemd-measure, ukify) in the trixie tools tree.

No image build: (a) the test vector of tests/unit/test_measure.py (made with systemd-measure 252), (b) small UKIs built here by the tree's ukify from
the tree's stub with a fake "kernel", (c) ukify's own --measure output for the same UKI.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from composer.core import paths
from composer.core.chroot import output_in
from composer.measure.pcr11 import BANKS, PHASES, predict_pcr11, predict_uki, uki_sections
from composer.spec.arch import get_arch
from composer.toolchain.toolstree import ensure_tools_tree

pytestmark = pytest.mark.integration

INSIDE = "/run/dps-measure-test"
MEASURE = "/usr/lib/systemd/systemd-measure"
VECTOR = {
    ".linux": b"LINUXKERNELDATA",
    ".osrel": b'ID=test\nPRETTY_NAME="Test OS"\n',
    ".cmdline": b"console=ttyS0 rw",
    ".initrd": b"INITRDDATA",
}
UNAME = "6.1.0-measure-test"


@pytest.fixture(scope="module")
def tools_tree() -> Path:
    return ensure_tools_tree(paths.cache_dir(), get_arch(platform.machine()))


def systemd_measure(
    tree: Path, workdir: Path, files: dict[str, str], banks: tuple[str, ...]
) -> dict[str, dict[str, str]]:
    """Run systemd-measure calculate; ``files`` maps section names to file names in ``workdir``.

    Returns bank -> phase -> hex, with "" for the pre-initrd phase (``--phase=:``)."""
    argv = [MEASURE, "calculate", "--json=short"]
    argv += [f"--{name.removeprefix('.')}={INSIDE}/{fn}" for name, fn in files.items()]
    argv += [f"--bank={b}" for b in banks]
    argv += [f"--phase={p or ':'}" for p in PHASES]
    out = json.loads(output_in(tree, argv, binds=[(workdir, INSIDE)]))
    return {
        bank: {entry.get("phase", ""): entry["hash"] for entry in entries}
        for bank, entries in out.items()
    }


def test_spec_notes_vector(tools_tree: Path, tmp_path: Path) -> None:
    files = {}
    for name, data in VECTOR.items():
        (tmp_path / name[1:]).write_bytes(data)
        files[name] = name[1:]
    theirs = systemd_measure(tools_tree, tmp_path, files, BANKS)
    ours = predict_pcr11(VECTOR, banks=BANKS)
    assert theirs == ours
    assert ours["sha256"][""] == "ed40acbe557e0e6ffb6167a706f15657754515643326dd92c5555c8f09c5c1ff"
    assert ours["sha256"][PHASES[-1]] == (
        "3b1495378338007cf0a503e8aeff880d19c2c640cb4b329faf2f7e4ec721a50d"
    )


@pytest.fixture(params=["raw-bytes", "pe-kernel"])
def ukify_uki(request: pytest.FixtureRequest, tools_tree: Path, tmp_path: Path) -> Path:
    """A UKI from the tree's ukify and stub. The fake kernel is either arbitrary bytes (not a
    multiple of FileAlignment) or a real PE whose SizeOfImage exceeds its file size (the addon
    stub), which shows whether ukify sizes .linux by SizeOfImage (systemd PR #34583) or by the
    file (the revert, PR #36259)."""
    arch = get_arch(platform.machine())
    efi_dir = tools_tree / "usr/lib/systemd/boot/efi"
    if request.param == "pe-kernel":
        kernel = (efi_dir / f"addon{arch.efi}.efi.stub").read_bytes()
    else:
        kernel = bytes(range(256)) * 37 + b"tail"
    (tmp_path / "linux").write_bytes(kernel)
    (tmp_path / "initrd").write_bytes(b"\x07070701" + bytes(1000) + b"TRAILER!!!")
    (tmp_path / "osrel").write_bytes(VECTOR[".osrel"])
    (tmp_path / "cmdline").write_bytes(b"console=ttyS0 root=PARTLABEL=x rw")
    ukify_out = output_in(
        tools_tree,
        [
            "ukify",
            "build",
            f"--linux={INSIDE}/linux",
            f"--initrd={INSIDE}/initrd",
            f"--cmdline=@{INSIDE}/cmdline",
            f"--os-release=@{INSIDE}/osrel",
            f"--uname={UNAME}",
            f"--stub=/usr/lib/systemd/boot/efi/linux{arch.efi}.efi.stub",
            f"--output={INSIDE}/uki.efi",
            "--measure",
            "--pcr-banks=sha1,sha256",
        ],
        binds=[(tmp_path, INSIDE)],
    )
    (tmp_path / "ukify-measure.txt").write_text(ukify_out)
    return tmp_path / "uki.efi"


def test_ukify_uki_matches_systemd_measure(tools_tree: Path, ukify_uki: Path) -> None:
    work = ukify_uki.parent
    secs = uki_sections(ukify_uki)
    # What ukify embedded is exactly what it was given: .linux is sized by the file, not by
    # the kernel's SizeOfImage, so the stub measures the same bytes as systemd-measure hashes.
    for name in ("linux", "initrd", "osrel", "cmdline"):
        assert secs[f".{name}"] == (work / name).read_bytes(), name
    assert secs[".uname"] == UNAME.encode()
    assert secs[".sbat"].startswith(b"sbat,1,") and secs[".sbat"].endswith(b"\n\0")

    ours = predict_uki(ukify_uki, banks=("sha1", "sha256"))

    # (1) systemd-measure on the sections extracted from the UKI
    extracted = work / "extracted"
    extracted.mkdir()
    files = {}
    for name in (".linux", ".osrel", ".cmdline", ".initrd", ".uname", ".sbat"):
        (extracted / name[1:]).write_bytes(secs[name])
        files[name] = f"extracted/{name[1:]}"
    assert systemd_measure(tools_tree, work, files, ("sha1", "sha256")) == ours

    # (2) systemd-measure on the files ukify was given (.uname/.sbat are generated by ukify)
    files.update({n: n[1:] for n in (".linux", ".osrel", ".cmdline", ".initrd")})
    assert systemd_measure(tools_tree, work, files, ("sha1", "sha256")) == ours

    # (3) ukify --measure: "11:<bank>=<hex>" per bank, for systemd-measure's four default phases
    lines = [ln for ln in (work / "ukify-measure.txt").read_text().splitlines() if ln]
    got: dict[str, list[str]] = {}
    for ln in lines:
        pcr, _, rest = ln.partition(":")
        bank, _, value = rest.partition("=")
        assert pcr == "11"
        got.setdefault(bank, []).append(value)
    assert got == {bank: [ours[bank][p] for p in PHASES[1:]] for bank in ("sha1", "sha256")}
