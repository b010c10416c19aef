"""Kill it anywhere, run it twice, share the cache, fill the disk: nothing lost, nothing left.

One private cache (and package cache) for the whole module, warmed by the first test:
- three builds at once into it, cold: two of one blueprint, one of another package set;
- builds killed with SIGTERM or SIGKILL at points spread over the stages, each chosen from the
  build's stage log (and the tool it waits for): a uki-virt build in dracut (chrooted into the
  tools tree), mmdebstrap extracting and dpkg installing, the copy of a cached root tree,
  customization, file systems, output conversion and storing the image in the cache; and while
  two stages run side by side (uki-virt's dracut and package-check's downloads). After
  each: no process of the build alive, no partial file in the output directory, a full cache
  check passes, and the next build succeeds and removes every leftover;
- damaged cache entries (truncated output, 0-byte record, wrong hash, missing output) found,
  removed and rebuilt;
- the scratch, cache and output directories each on a small tmpfs, filled while a build runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from composer.core.hashing import sha256_file
from composer.core.paths import cache_dir

from .conftest import ModuleTmp
from .faults import (
    DEFAULT,
    Build,
    Env,
    Kill,
    initrd_names,
    leftovers,
    partial_files,
    stop_builds,
    variant,
)

pytestmark = pytest.mark.integration

SHARED_TOOLS = cache_dir() / "trees"  # the session's cache (DPS_COMPOSER_CACHE_DIR too)
KILLS: list[Kill] = []
TIMES: dict[str, float] = {}


@pytest.fixture(autouse=True)
def _no_build_outlives_its_test() -> Iterator[None]:
    yield
    stop_builds()


@pytest.fixture(scope="module")
def env(module_tmp: ModuleTmp, default_image: Path) -> Env:
    """A fresh cache; only the tools tree (a trixie mmdebstrap, the same for every composer
    version) is copied from the user's cache, to save its build (the session's default
    image, shared with the other test files, has made it there by now)."""
    base = module_tmp.mktemp("faults")
    env = Env(base / "cache", base / "work", base)
    (env.cache / "trees").mkdir(parents=True)
    env.work.mkdir()
    for tree in SHARED_TOOLS.glob("tools-*"):
        if (tree / "usr/bin/ukify").exists():
            subprocess.run(["cp", "-a", str(tree), str(env.cache / "trees")], check=True)
    return env


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    TIMES[label] = round(time.monotonic() - start, 1)
    print(f"times: {TIMES}")


def _images(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in o.items() if k != "allocated"} for o in manifest["outputs"]]


def _manifest(out: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / f"{name}.manifest.json").read_text())
    return data


@pytest.fixture(scope="module")
def fleet(env: Env) -> dict[str, Any]:
    """Three builds at once, cold (the uki-virt repository, the apt index, the package
    cache and two root trees are made while they run): two of the default blueprint, one
    with another package set."""
    other = variant(env, "other", "other", ("less",))
    outs = [env.base / "fleet-a", env.base / "fleet-b", env.base / "fleet-c"]
    with timed("3 concurrent cold builds"):
        builds = [
            Build(env, bp, out) for bp, out in zip((DEFAULT, DEFAULT, other), outs, strict=True)
        ]
        results = [b.finish() for b in builds]
    return {"outs": outs, "results": results, "logs": [_kept_log(o) for o in outs]}


def _kept_log(out: Path) -> str:
    return "".join(p.read_text() for p in out.glob("*.build.log"))


def test_three_concurrent_builds_share_one_cache(env: Env, fleet: dict[str, Any]) -> None:
    a, b, c = fleet["outs"]
    for code, _out, err in fleet["results"]:
        assert code == 0, err
    ma, mb = _manifest(a, "debian-uki-sdboot"), _manifest(b, "debian-uki-sdboot")
    mc = _manifest(c, "other")
    raw = {o["format"]: o["sha256"] for o in ma["outputs"]}["raw"]
    assert sha256_file(a / "debian-uki-sdboot.raw") == raw
    assert sha256_file(b / "debian-uki-sdboot.raw") == raw, "two builds of one blueprint differ"
    assert "less" in mc["packages"] and "less" not in ma["packages"]
    # the uki-virt build ran dracut below a reaper, not in a PID namespace: dracut saw no
    # container and made the initrd's device nodes
    assert {"dev/console", "dev/null"} <= initrd_names(a / "debian-uki-sdboot.raw", ma)
    assert sha256_file(c / "other.raw") != raw
    # one build made the uki-virt repository; the others waited for it and took it
    made = [log for log in fleet["logs"] if "uki-virt" in log and "building into" in log]
    assert len(made) == 1, "the uki-virt repository was built more than once"
    # one of the identical builds made the image; the other took it from the cache
    assert sorted(m["cache"]["image"] for m in (ma, mb)) == ["hit", "miss"]
    assert leftovers(env, fleet["outs"]) == []
    assert env.composer("cache", "check").returncode == 0


def _after_kill(env: Env, kill: Kill, out: Path, name: str) -> None:
    """What every kill point must leave: see the module docstring."""
    KILLS.append(kill)
    print(kill.summary())
    assert kill.survivors == [], f"processes outlived the build: {kill.summary()}"
    if kill.signal == "SIGTERM":
        assert kill.returncode == 143, kill.stderr
        assert f"build log: {out / f'{name}.build.log'}" in kill.stderr
        assert "Traceback" not in kill.stderr
        assert "interrupted" in (out / f"{name}.build.log").read_text().splitlines()[-1]
    else:
        assert kill.returncode == -signal.SIGKILL
    assert partial_files(out) == []
    mounts = Path("/proc/self/mounts").read_text()
    assert str(env.work) not in mounts and str(env.cache) not in mounts, "mounts left"
    left = leftovers(env, [out])
    check = env.composer("cache", "check")
    assert check.returncode == 0, check.stdout
    # the next build (an image the cache holds, into the same directory) succeeds and
    # removes what the killed one left
    nxt = env.composer("build", str(DEFAULT), "-o", str(out))
    assert nxt.returncode == 0, nxt.stderr
    assert leftovers(env, [out]) == [], f"left after the next build (was {left})"


def _kill_at(
    env: Env, bp: Path, out: Path, point: str, sig: signal.Signals, marker: str, tools: str
) -> None:
    build = Build(env, bp, out)
    build.wait_for(marker, tools)
    _after_kill(env, build.kill(point, sig), out, bp.stem)


def test_kills_while_packages_are_built_and_installed(env: Env, fleet: dict[str, Any]) -> None:
    """Cold stages: a uki-virt build (its own kernel command line: a new one) in dracut,
    chrooted into the tools tree; a new package set's root tree while mmdebstrap extracts
    and while dpkg runs maintainer scripts inside the tree."""
    out = env.base / "cold"
    quiet = variant(env, "quiet", "quiet")
    quiet.write_text(quiet.read_text().replace('append = "audit=0"', 'append = "audit=0 quiet"'))
    with timed("kills in cold stages"):
        _kill_at(env, quiet, out, "uki-virt: dracut", signal.SIGTERM, "# stage: uki-virt", "dracut")
        extra = variant(env, "extra", "extra", ("file",))
        _kill_at(env, extra, out, "root: extracting", signal.SIGTERM, "I: extracting archives", "")
        _kill_at(
            env,
            extra,
            out,
            "root: dpkg in the tree",
            signal.SIGKILL,
            "I: installing remaining packages inside the chroot",
            "dpkg",
        )


def _until(build: Build, shown: Callable[[str], bool], timeout: float = 600) -> None:
    """Until the build's progress lines (stderr) so far show what ``shown`` looks for."""
    end = time.monotonic() + timeout
    while not shown(build.output()[1]):
        assert time.monotonic() < end and build.proc.poll() is None, build.output()
        time.sleep(0.02)


def _running_stages(err: str) -> set[str]:
    """The stages the progress lines (stderr) show started and not ended."""
    started = set(re.findall(r"stage ([\w-]+): started", err))
    return {n for n in started if not re.search(rf"stage {n}: (built|cached|FAILED)", err)}


def test_a_kill_while_three_stages_overlap_stops_them_all(env: Env, fleet: dict[str, Any]) -> None:
    """A new kernel command line and new packages: uki-virt builds (dracut) while
    package-check resolves, downloads and reads packages and the root tree waits for those
    downloads (or installs them), side by side in three threads of the build. SIGTERM reaches
    the main thread, which stops every stage's tools (or wait), lets each remove its
    temporaries, and exits 143 with nothing left."""
    out = env.base / "overlap"
    bp = variant(env, "overlap", "overlap", ("strace", "gdb"))
    bp.write_text(bp.read_text().replace('append = "audit=0"', 'append = "audit=0 panic=5"'))
    build = Build(env, bp, out)
    overlapping = {"uki-virt", "package-check", "root"}
    with timed("kill while uki-virt, package-check and root overlap"):
        build.wait_for("# stage: package-check")
        _until(build, lambda err: _running_stages(err) == overlapping)
        kill = build.kill("uki-virt, package-check and root", signal.SIGTERM)
        _after_kill(env, kill, out, bp.stem)
    # all were stopped by the main thread, none failed on its own
    for name in overlapping:
        assert re.search(rf"stage {name}: stopped after", kill.stderr), kill.stderr
    assert "FAILED" not in kill.stderr


IMAGE_STAGE_KILLS = [  # (point, signal, stage-log marker, tools one of which must run)
    ("root: copy of the cached tree", signal.SIGKILL, "$ cp -a --reflink=auto", "cp"),
    ("customize", signal.SIGTERM, "# stage: customize", ""),
    # mke2fs of the tools tree, started through the tree's dynamic loader
    ("filesystems: mke2fs", signal.SIGKILL, "# stage: filesystems", "ld-linux-x86-64"),
    ("image: qemu-img convert", signal.SIGTERM, "# stage: image", "qemu-img"),
    # the outputs are hard links into the entry (no cp to wait for): killed from the moment
    # the entry's temporary is made, while the manifest is made and copied in, the entry
    # published and the outputs synced and published
    ("storing the image in the cache", signal.SIGKILL, ": storing", ""),
    ("storing the image in the cache", signal.SIGTERM, ": storing", ""),
]


def test_kills_in_the_image_stages(env: Env, fleet: dict[str, Any]) -> None:
    """Warm stages (the root tree is cached, the image is not): then the killed blueprint
    builds."""
    out = env.base / "warm"
    bp = variant(env, "warm", "warm")
    with timed("kills in image stages"):
        for point, sig, marker, tools in IMAGE_STAGE_KILLS:
            _kill_at(env, bp, out, point, sig, marker, tools)
        code, _, err = Build(env, bp, out).finish()
    assert code == 0, err
    assert _manifest(out, "warm")["cache"] == {"root": "hit", "image": "miss"}
    assert partial_files(out) == [] and leftovers(env, [out]) == []
    print("\n".join(k.summary() for k in KILLS))


def _image_entry(env: Env, name: str) -> Path:
    for record in (env.cache / "stages/image").glob("*/entry.json"):
        if json.loads(record.read_text())["inputs"]["plan"] == name:
            return record.parent
    raise AssertionError(f"no image entry for {name}")


CORRUPTIONS: dict[str, Callable[[Path, str], object]] = {
    "truncated output": lambda e, n: os.truncate(e / f"{n}.qcow2", 4096),
    "0-byte record": lambda e, n: (e / "entry.json").write_bytes(b""),
    "wrong hash": lambda e, n: _flip_a_byte(e / f"{n}.raw"),
    "missing output": lambda e, n: (e / f"{n}.raw").unlink(),
}


def _flip_a_byte(path: Path) -> None:
    stamp = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(1024 * 1024)
        byte = fh.read(1)
        fh.seek(1024 * 1024)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same size, same mtime


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_a_damaged_cache_entry_is_found_removed_and_rebuilt(
    env: Env, fleet: dict[str, Any], how: str
) -> None:
    name = "debian-uki-sdboot"
    out = env.base / f"damaged-{how.replace(' ', '-')}"
    first = env.composer("build", str(DEFAULT), "-o", str(out / "before"))
    assert first.returncode == 0, first.stderr
    entry = _image_entry(env, name)
    CORRUPTIONS[how](entry, name)
    with timed(f"rebuild after {how}"):
        again = env.composer("build", str(DEFAULT), "-o", str(out / "after"))
    assert again.returncode == 0, again.stderr
    assert "damaged entry removed" in again.stderr, again.stderr
    assert "damaged entry removed" in (out / "after" / f"{name}.build.log").read_text()
    m = _manifest(out / "after", name)
    assert m["cache"]["image"] == "miss" and m["cache"]["root"] == "hit"
    # the same image again (what the host's file system allocates for a sparse file may differ)
    assert _images(m) == _images(_manifest(out / "before", name))
    for o in m["outputs"]:
        assert sha256_file(out / "after" / o["file"]) == o["sha256"]
    assert not entry.exists() or _image_entry(env, name) == entry  # rebuilt under its key
    assert env.composer("cache", "check").returncode == 0
    shutil.rmtree(out)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def _fill(directory: Path) -> Path:
    """Another process takes all the file system's free space (down to the last 64 KiB)."""
    filler = directory / "filler"
    with open(filler, "wb") as fh:
        size, step = 0, 64 * 2**20
        while step >= 64 * 1024:
            try:
                os.posix_fallocate(fh.fileno(), size, step)
                size += step
            except OSError:
                step //= 2
    return filler


def _warm_copy(env: Env, cache: Path) -> None:
    """What a build of a new host name needs from the cache: tools tree, uki-virt, apt index,
    the default package set's root tree."""
    for part in ("trees", "uki-virt", "apt-index"):
        subprocess.run(["cp", "-a", str(env.cache / part), str(cache)], check=True)
    roots = env.cache / "stages/root"
    (cache / "stages/root").mkdir(parents=True)
    for entry in roots.iterdir():
        record = entry / "entry.json"
        if (
            record.is_file()
            and json.loads(record.read_text())["inputs"]["plan"] == "debian-uki-sdboot"
        ):
            subprocess.run(["cp", "-a", str(entry), str(cache / "stages/root")], check=True)


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(
    env: Env, fleet: dict[str, Any], tmpfs: Callable[[str, str], Path]
) -> None:
    small = tmpfs("small-out", "64M")
    work, out, cache = tmpfs("work", "2G"), tmpfs("out", "2G"), tmpfs("cache", "2G")
    _warm_copy(env, cache)
    full = Env(cache, work, env.base)
    bp = variant(env, "full", "full")
    with timed("disk-full builds"):
        refused = full.composer("build", str(bp), "-o", str(small))
        assert refused.returncode == 3, refused.stderr
        # a 64 MiB file system, of which the build log and the staging directory take a little
        found = re.search(
            rf"not enough free space: the output directory {re.escape(str(small))} "
            r"has (\d+\.\d) MiB free",
            refused.stderr,
        )
        assert found and 60 <= float(found.group(1)) <= 64.0, refused.stderr
        assert "this build needs about" in refused.stderr and "Traceback" not in refused.stderr
        # nothing but the failed build's log (and the directory's publishing lock)
        assert sorted(p.name for p in small.iterdir()) == [
            ".dps-composer-output.lock",
            "full.build.log",
        ]
        for role, directory in (("scratch", work), ("output", out), ("cache", cache)):
            build = Build(full, bp, out)
            # the root stage checks the space first, then copies the cached tree: fill now,
            # once package-check beside it has logged its (long) output: the build log on a
            # full output disk keeps the few KiB left for the failure's last lines
            build.wait_for("$ cp -a --reflink=auto")
            _until(build, lambda err: bool(re.search(r"stage package-check: (built|cached)", err)))
            filler = _fill(directory)
            code, _, err = build.finish()
            assert code == 3, err
            said = f"no space left on device in the {role} directory {directory}"
            assert said in err and "this build needs about" in err, err
            assert "Traceback" not in err
            filler.unlink()
            assert leftovers(full, [out]) == [], f"{role}: temporaries left"
            assert partial_files(out) == [] and not list(out.glob("*.raw"))
            assert "no space left on device" in (out / "full.build.log").read_text().lower()
        assert full.composer("cache", "check").returncode == 0
        code, _, err = Build(full, bp, out).finish()  # room again: it builds
    assert code == 0, err
    assert leftovers(full, [out]) == [] and partial_files(out) == []
