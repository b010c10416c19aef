"""Resolution inside a root tree: openat2(RESOLVE_IN_ROOT) and the user-space walk agree on
every path, and no path leads out of the tree."""

from __future__ import annotations

import errno
import os
import stat
import uuid
from pathlib import Path

import pytest

from composer.blueprint.customizations import Customizations, SshKey
from composer.blueprint.files import Directory, File
from composer.build.fs.partitions import split_subtrees
from composer.core.errors import ComposerError
from composer.plan.load import parse
from composer.plan.plan import make_plan
from composer.rootfs import customize, extras
from composer.rootfs.intree import InTreeError, Tree
from composer.rootfs.resolve import kernel_resolution, open_in_root, walk_open

needs_openat2 = pytest.mark.skipif(not kernel_resolution(), reason="kernel without openat2")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Links of every kind: merged-/usr, absolute, relative, climbing, looping, dangling,
    magic, and a file where a directory is expected."""
    t = tmp_path / "tree"
    for d in ("usr/lib/systemd/system", "usr/bin", "etc/default", "run/lock", "var", "a/b/c"):
        (t / d).mkdir(parents=True)
    (t / "usr/lib/systemd/system/x.service").write_text("x")
    (t / "etc/locale.conf").write_text("LANG=C\n")
    (t / "afile").write_text("f")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    links = {
        "lib": "usr/lib",
        "bin": "usr/bin",
        "var/run": "/run",
        "var/lock": "../run/lock",
        "etc/default/locale": "../locale.conf",
        "up": "../../../../../../../..",
        "abs-out": str(outside),
        "rel-out": "../outside",
        "loop1": "loop2",
        "loop2": "loop1",
        "dangling": "/nowhere/at/all",
        "proc-self": "/proc/self/root",
        "a/b/c/back": "../../..",
        "a/b/to-lib": "/lib/systemd",
        "file-dir": "afile",
    }
    for link, target in links.items():
        (t / link).symlink_to(target)
    return t


PATHS = [
    "/", "", "lib/systemd/system/x.service", "/lib/systemd/system/x.service", "var/run/lock",
    "var/lock", "etc/default/locale", "up", "up/etc/locale.conf", "../../etc/locale.conf",
    "abs-out", "abs-out/secret", "rel-out/secret", "loop1", "dangling", "proc-self",
    "a/b/c/back/usr/bin", "a/b/to-lib/system/x.service", "file-dir/x", "afile/..", "missing/x",
    "a/./b/../b/c", "lib/../etc/../lib/systemd",
]  # fmt: skip


def _outcome(fd_maker: object) -> tuple[object, ...]:
    try:
        fd = fd_maker()  # type: ignore[operator]
    except OSError as exc:
        return ("error", exc.errno)
    try:
        st = os.fstat(fd)
        return ("ok", st.st_dev, st.st_ino)
    finally:
        os.close(fd)


@needs_openat2
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("flags", "follow", "no_symlinks"),
    [(os.O_PATH, True, False), (os.O_PATH, False, False), (os.O_PATH | os.O_DIRECTORY, True, False),
     (os.O_RDONLY | os.O_DIRECTORY, True, True)],
)  # fmt: skip
def test_kernel_and_walk_agree(
    tree: Path, path: str, flags: int, follow: bool, no_symlinks: bool
) -> None:
    root = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        kw = {"follow": follow, "no_symlinks": no_symlinks}
        kernel = _outcome(lambda: open_in_root(root, path, flags, **kw, kernel=True))
        walk = _outcome(lambda: walk_open(root, path, flags, **kw))
    finally:
        os.close(root)
    if (
        path == "proc-self" and follow
    ):  # a magic link: the kernel refuses it (EXDEV, ELOOP), the walk
        assert kernel[0] == walk[0] == "error"  # reads it as text: /proc is empty in the tree
        return
    assert kernel == walk, path


def test_nothing_resolves_outside(tree: Path) -> None:
    inside = {os.stat(p, follow_symlinks=False).st_ino for p in [tree, *tree.rglob("*")]}
    for kernel in [True, False] if kernel_resolution() else [False]:
        root = os.open(tree, os.O_PATH | os.O_DIRECTORY)
        try:
            for path in PATHS:
                outcome = _outcome(
                    lambda p=path, r=root, k=kernel: open_in_root(r, p, os.O_PATH, kernel=k)
                )
                assert outcome[0] == "error" or outcome[2] in inside, (kernel, path)
        finally:
            os.close(root)


def test_link_loops_stop(tree: Path) -> None:
    root = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as exc:
            walk_open(root, "loop1/x", os.O_PATH)
        assert exc.value.errno == errno.ELOOP
    finally:
        os.close(root)


def test_tree_operations_stay_inside(tree: Path, resolution: str) -> None:
    with Tree(tree) as t:
        t.write("/lib/systemd/system/y.service", "[Unit]\n")  # merged /usr keeps working
        assert (tree / "usr/lib/systemd/system/y.service").read_text() == "[Unit]\n"
        t.write("/var/run/pid", "1\n")  # var/run -> /run: the tree's /run
        assert (tree / "run/pid").read_text() == "1\n"
        with pytest.raises(InTreeError, match="not in the image"):
            t.write("/abs-out/secret", "x")  # abs-out -> /…/outside: missing inside the tree
        assert (tree.parent / "outside/secret").read_text() == "s"
        t.write_through("/etc/default/locale", "LANG=de_DE.UTF-8\n")
        assert (tree / "etc/locale.conf").read_text() == "LANG=de_DE.UTF-8\n"
        assert (tree / "etc/default/locale").is_symlink()
        t.write("/rel-out", "replaced")  # a link as the last component is replaced
        assert not (tree / "rel-out").is_symlink()
        with pytest.raises(InTreeError, match="not a regular file"):
            t.read_bytes("/a")
        with pytest.raises(InTreeError, match="not in the image"):
            t.makedirs("/dangling/x")
        t.symlink("/etc/localtime", "/usr/share/zoneinfo/UTC")
        assert os.readlink(tree / "etc/localtime") == "/usr/share/zoneinfo/UTC"
        t.rmtree("/abs-out")  # a link: only the link goes
        assert (tree.parent / "outside/secret").exists() and not (tree / "abs-out").exists()


def test_fifo_and_devices_are_never_opened(tree: Path, resolution: str) -> None:
    os.mkfifo(tree / "etc/fifo")
    (tree / "etc/vconsole.conf").symlink_to("fifo")
    with Tree(tree) as t:
        with pytest.raises(InTreeError, match="not a regular file"):
            t.read_text("/etc/fifo")  # would block forever if opened
        with pytest.raises(InTreeError, match="not a regular file"):
            t.write_through("/etc/vconsole.conf", "KEYMAP=us\n")
    assert stat.S_ISFIFO(os.lstat(tree / "etc/fifo").st_mode)


def test_debian_var_run_stays_in_the_image(tmp_path: Path, resolution: str) -> None:
    """The finding as seen on a real Debian tree: var/run -> /run (the host's /run when read
    on the host). Keys, files and directories land in the tree's own /run; a mount point
    there is refused; the host's /run is not touched."""
    name = f"dps-composer-test-{uuid.uuid4().hex[:12]}"
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "run/lock").mkdir(parents=True)
    (tree / "var").mkdir()
    (tree / "var/run").symlink_to("/run")
    (tree / "var/lock").symlink_to("/run/lock")
    uid, gid = os.getuid(), os.getgid()
    (tree / "etc/passwd").write_text(f"svc:x:{uid}:{gid}::/var/run/{name}:/bin/sh\n")
    (tree / "etc/group").write_text(f"svc:x:{gid}:\n")
    customize.apply(tree, Customizations(sshkey=(SshKey(user="svc", key="ssh-ed25519 AAAAk"),)))
    extras.write_file(tree, File.model_construct(path=f"/var/run/{name}/f", data="d", mode=None,
                                                 user=None, group=None))  # fmt: skip
    extras.make_directory(tree, Directory.model_construct(
        path=f"/var/lock/{name}", mode=None, user=None, group=None, ensure_parents=True))  # fmt: skip
    assert (tree / f"run/{name}/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAAk\n"
    assert (tree / f"run/{name}/f").read_text() == "d"
    assert (tree / f"run/lock/{name}").is_dir()
    assert not Path(f"/run/{name}").exists() and not Path(f"/run/lock/{name}").exists()
    plan = make_plan(parse('name = "x"\n'))
    from dataclasses import replace

    part = replace(plan.partition("root"), number=9, designator="linux-generic",
                   mountpoint=f"/var/run/{name}")  # fmt: skip
    with pytest.raises(ComposerError, match="crosses the symbolic link /var/run -> /run"):
        split_subtrees(tree, (part,), tmp_path / "parts")
    assert not Path(f"/run/{name}").exists()


def test_relative_resolv_conf_link_is_kept(tmp_path: Path, resolution: str) -> None:
    """systemd-resolved links /etc/resolv.conf to ../run/systemd/resolve/stub-resolv.conf
    (missing in a build tree): the customize step used to crash on it."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")
    customize.prepare_system(tree)
    assert os.readlink(tree / "etc/resolv.conf") == "../run/systemd/resolve/stub-resolv.conf"
    (tree / "etc/resolv.conf").unlink()
    (tree / "etc/resolv.conf").write_text("nameserver 10.0.0.1\n")  # the host's, copied in
    customize.prepare_system(tree)
    assert (tree / "etc/resolv.conf").read_text() == ""


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_the_hosts_error_not_the_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Writing into the tree on a full disk stays an OSError (the build names the directory
    that ran out, exit 3), never an InTreeError blaming a path in the image (exit 2)."""
    from composer.build import space
    from composer.build.space import DiskFullError, Needs, Places

    def full(*args: object, **kw: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("composer.rootfs.intree.replace_at", full)
    places = Places(tmp_path, tmp_path, tmp_path)
    with (
        pytest.raises(DiskFullError, match="no space left on device in the scratch") as err,
        space.disk_full_errors(places, Needs),
        Tree(tmp_path) as t,
    ):
        t.write("/usr/libexec/check", "#!/bin/sh\n", 0o755)
    assert err.value.exit_code == 3
    # any other error of a path in the tree still names the path
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with (
        pytest.raises(InTreeError, match="/file in the image: a component is not a directory"),
        Tree(tmp_path) as t,
    ):
        t.write("/file/x/y", "z")
