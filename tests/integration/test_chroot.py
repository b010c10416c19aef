"""composer.core.chroot's binds, in the cached tools tree (no image build, no VM): a read-only
bind refuses every write from root inside the chroot, a writable one takes it, and neither
mount is left on the host."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from composer.core import paths
from composer.core.chroot import output_in, run_in
from composer.core.errors import ComposerError
from composer.spec.arch import get_arch
from composer.toolchain.toolstree import ensure_tools_tree

pytestmark = pytest.mark.integration

KEYS = "/run/dps-chroot-test-keys"
WORK = "/run/dps-chroot-test-work"


@pytest.fixture(scope="module")
def tools_tree() -> Path:
    return ensure_tools_tree(paths.cache_dir(), get_arch(platform.machine()))


def test_a_read_only_bind_refuses_writes_from_root_in_the_chroot(
    tools_tree: Path, tmp_path: Path
) -> None:
    keys, work = tmp_path / "keys", tmp_path / "work"
    keys.mkdir(mode=0o700)
    work.mkdir()
    (keys / "db.key").write_text("secret\n")
    (keys / "db.key").chmod(0o600)
    binds, ro_binds = [(work, WORK)], [(keys, KEYS)]
    # readable: the tool gets what it needs
    assert (
        output_in(tools_tree, ["cat", f"{KEYS}/db.key"], binds=binds, ro_binds=ro_binds)
        == "secret\n"
    )
    # writing beside, over, into or removing a key: EROFS, for root too
    for argv in (
        ["sh", "-c", f"echo x > {KEYS}/new"],
        ["sh", "-c", f"echo x >> {KEYS}/db.key"],
        ["truncate", "-s", "0", f"{KEYS}/db.key"],
        ["rm", "-f", f"{KEYS}/db.key"],
        ["chmod", "0644", f"{KEYS}/db.key"],
        ["mkdir", f"{KEYS}/sub"],
    ):
        with pytest.raises(ComposerError, match="Read-only file system"):
            run_in(tools_tree, argv, binds=binds, ro_binds=ro_binds)
    assert sorted(p.name for p in keys.iterdir()) == ["db.key"]
    assert (keys / "db.key").read_text() == "secret\n"
    assert (keys / "db.key").stat().st_mode & 0o777 == 0o600
    # the writable bind of the same command takes its output
    run_in(
        tools_tree, ["sh", "-c", f"cat {KEYS}/db.key > {WORK}/out"], binds=binds, ro_binds=ro_binds
    )
    assert (work / "out").read_text() == "secret\n"
    # the mounts lived in the command's namespace only
    mounts = Path("/proc/self/mountinfo").read_text()
    assert KEYS not in mounts and WORK not in mounts
