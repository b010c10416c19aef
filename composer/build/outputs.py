"""Image outputs: conversions of the raw disk (a compressed qcow2 by composer/image/qcow2.py,
the other formats by qemu-img, zstd, xz), checks of what came out (qemu-img info/check, the
VHD footer, the compressors' own tests), checksums, manifest.json."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

from composer.core import tools
from composer.core.errors import ComposerError, HostError
from composer.core.files import atomic_path, fsync_file
from composer.core.hashing import sha256_file
from composer.image.formats import FORMATS, VHD_FIXED, VHD_FOOTER, vhd_footer
from composer.image.qcow2 import write_qcow2
from composer.manifest.model import Output

MiB = 1024 * 1024


class OutputCheckError(HostError):
    """An output file failed its check."""


def qemu_img_options(fmt: str, qcow2_compression: str = "zstd") -> list[str]:
    """`qemu-img convert` options after ``-O DRIVER`` for one output format."""
    if fmt == "qcow2" and qcow2_compression == "none":  # compressed: composer/image/qcow2.py
        return []
    if fmt == "vmdk":
        return ["-o", "subformat=streamOptimized"]
    if fmt == "vhdx":
        return ["-o", "subformat=dynamic"]
    if fmt == "vhd":
        # force_size: the virtual size is the disk's size exactly, not a CHS approximation.
        return ["-o", "subformat=fixed,force_size=on"]
    raise ValueError(f"{fmt!r} is not made by qemu-img")


def convert(raw: Path, fmt: str, dest: Path, qcow2_compression: str = "zstd") -> None:
    """Make ``dest`` in format ``fmt`` from the raw disk ``raw`` (left in place). A compressed
    qcow2 is written by our own writer: in parallel and reproducible, where ``qemu-img convert
    -c`` compresses on one thread (and in parallel, with ``-W``, lays the file out differently
    every run)."""
    if fmt not in FORMATS or fmt == "raw":
        raise ValueError(f"unsupported output format {fmt!r}")
    with atomic_path(dest) as tmp:
        if fmt == "qcow2" and qcow2_compression != "none":
            write_qcow2(raw, tmp, qcow2_compression)
        elif fmt == "raw.zst":
            tools.run(["zstd", "-q", "-f", "-T0", "-o", tmp, raw])
        elif fmt == "raw.xz":
            with open(tmp, "wb") as out:
                _xz(raw, out)
        else:
            if fmt == "vhd" and raw.stat().st_size % MiB:
                raise OutputCheckError(f"{dest.name}: a VHD for Azure must be a whole MiB")
            driver = FORMATS[fmt].qemu or fmt
            opts = qemu_img_options(fmt, qcow2_compression)
            argv: list[str | os.PathLike[str]] = ["qemu-img", "convert", "-f", "raw"]
            argv += ["-O", driver, *opts, raw, tmp]
            tools.run(argv)


def _xz(raw: Path, out: IO[bytes]) -> None:
    """xz -T0 -1 of ``raw`` into ``out`` (preset 1: several times faster than -6, ~10 % larger)."""
    tools.run(["xz", "-T0", "-1", "-c", "-k", "--", raw], stdout=out)


def _check_vhd(path: Path, virtual_size: int) -> None:
    """A fixed VHD of a whole MiB (Azure): footer cookie, type and size; file = disk + footer."""
    with open(path, "rb") as fh:
        fh.seek(-VHD_FOOTER, os.SEEK_END)
        footer = vhd_footer(fh.read(VHD_FOOTER))
    if footer is None:
        raise OutputCheckError(f"{path.name}: no VHD footer (cookie 'conectix') at the end")
    size = path.stat().st_size
    if (
        footer.disk_type != VHD_FIXED
        or footer.current_size != virtual_size
        or virtual_size % MiB
        or size != virtual_size + VHD_FOOTER
    ):
        raise OutputCheckError(
            f"{path.name}: not a fixed VHD of a whole MiB: footer {footer}, file size {size}"
        )


def check_output(path: Path, fmt: str, virtual_size: int) -> str:
    """Check one output; raise OutputCheckError naming the file and the problem, else say
    what was checked."""
    spec = FORMATS[fmt]
    if spec.qemu is None:
        tool = "zstd" if fmt == "raw.zst" else "xz"
        tools.run([tool, "-t", "-q", path])
        return f"{tool} -t: intact"
    if fmt == "vhd":
        _check_vhd(path, virtual_size)
    try:
        text = tools.output(["qemu-img", "info", "--output=json", "-f", spec.qemu, path])
    except ComposerError as err:
        raise OutputCheckError(f"{path.name}: qemu-img info failed: {err}") from None
    info = json.loads(text)
    done = [f"qemu-img info: {info.get('format')}, virtual size {info.get('virtual-size')}"]
    if info.get("format") != spec.qemu or info.get("virtual-size") != virtual_size:
        raise OutputCheckError(
            f"{path.name}: qemu-img info says format {info.get('format')}, virtual size "
            f"{info.get('virtual-size')}; expected {spec.qemu}, {virtual_size}"
        )
    if spec.checkable:
        try:
            report = json.loads(
                tools.output(["qemu-img", "check", "--output=json", "-f", spec.qemu, path])
            )
        except ComposerError as err:
            raise OutputCheckError(f"{path.name}: qemu-img check failed: {err}") from None
        bad = {k: report[k] for k in ("check-errors", "corruptions", "leaks") if report.get(k)}
        if bad:
            raise OutputCheckError(f"{path.name}: qemu-img check reports {bad}")
        done.append("qemu-img check: no errors")
    if fmt == "vhd":
        done.append("VHD footer: fixed, whole MiB")
    return "; ".join(done)


def make_outputs(
    raw: Path,
    formats: Sequence[str],
    dest_for: Callable[[str], Path],
    qcow2_compression: str = "zstd",
) -> list[Output]:
    """Every format from ``raw`` (which stays), each checked; their manifest entries.

    Hashing runs in two more threads (hashlib releases the GIL): the raw disk's while the
    conversions run, each converted file's while it is checked. On two cores that hides most
    of the hashing (a 2 GiB raw disk takes about 1.3 s of sha256, its qcow2 0.2 s). A third
    thread puts each finished file on disk (fsync) meanwhile, which publishing needs: done
    here, its writes overlap the compression instead of following it."""
    virtual_size = raw.stat().st_size
    with (
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="sha256") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsync") as flush,
    ):
        digests: dict[str, Future[str]] = {}
        flushed: list[Future[None]] = []
        if "raw" in formats:
            digests["raw"] = pool.submit(sha256_file, raw)
            flushed.append(flush.submit(fsync_file, raw))
        made = []
        for fmt in formats:
            dest = dest_for(fmt)
            if fmt != "raw":
                convert(raw, fmt, dest, qcow2_compression)
                digests[fmt] = pool.submit(sha256_file, dest)
                flushed.append(flush.submit(fsync_file, dest))
            made.append((fmt, dest, check_output(dest, fmt, virtual_size)))
        for done in flushed:
            done.result()
        return [
            _described(dest, fmt, checked, virtual_size, qcow2_compression, digests[fmt].result())
            for fmt, dest, checked in made
        ]


def _described(
    path: Path,
    fmt: str,
    checked: str,
    virtual_size: int,
    qcow2_compression: str,
    sha256: str,
) -> Output:
    st = path.stat()
    return Output(
        file=path.name,
        format=fmt,
        size=st.st_size,
        allocated=st.st_blocks * 512,
        sha256=sha256,
        qemu_format=FORMATS[fmt].qemu,
        virtual_size=virtual_size,
        checked=checked,
        compression=qcow2_compression if fmt == "qcow2" else None,
    )
