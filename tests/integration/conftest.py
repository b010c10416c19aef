"""Integration tests build and boot real images: root, the Debian archive, QEMU/OVMF/swtpm."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
# The suite builds about twenty distinct images; a smaller stage cache than the 10 GiB default
# keeps its disk use within a CI machine's (builds that need an evicted entry rebuild it).
os.environ.setdefault("DPS_COMPOSER_CACHE_MAX", "6 GiB")
# Two test workers on two cores boot side by side: one vCPU per VM. Two each would only queue
# for the same cores (and a vCPU spinning on a lock its descheduled twin holds can waste
# them) (two default-image boots side by side, median of 4: 118 s with two vCPUs each, 103 s
# with one; bench/results/vcpus-side-by-side.json, from bench/side_by_side.py).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) * 2 > (os.cpu_count() or 1):
    os.environ.setdefault("DPS_COMPOSER_VCPUS", "1")


def composer(
    *args: str, check: bool = True, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """Run the dps-composer CLI the way a user does."""
    proc = subprocess.run(
        [sys.executable, "-m", "composer", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"dps-composer {' '.join(args)} exited {proc.returncode}")
    return proc


def composer_streamed(*args: str, timeout: float = 1800) -> tuple[int, list[tuple[bool, str]]]:
    """Run the CLI with stderr a pipe, as CI does; (exit code, every stderr line with whether
    the command was still running when the line was read from the pipe)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[tuple[bool, str]] = []
    try:
        for line in proc.stderr:
            lines.append((proc.poll() is None, line.rstrip("\n")))
            sys.stderr.write(line)
        proc.wait(timeout)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, lines


@pytest.fixture(scope="session", autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests build images and must run as root")


class ModuleTmp:
    """``tmp_path_factory.mktemp`` for module-scoped fixtures whose directories go when the
    module is done (kept when one of its tests failed): a built image takes about 1 GB, and a
    whole run's worth kept to the end filled a CI machine's disk."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self.made: list[Path] = []

    def mktemp(self, name: str) -> Path:
        path = self._factory.mktemp(name)
        self.made.append(path)
        return path


@pytest.fixture(scope="module")
def module_tmp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleTmp]:
    tmp = ModuleTmp(tmp_path_factory)
    failed = request.session.testsfailed
    yield tmp
    if request.session.testsfailed == failed:
        for path in tmp.made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def default_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default blueprint, built once per session; returns the output directory (what
    `build --json` printed is in build_json(out))."""
    out = tmp_path_factory.mktemp("default")
    built = composer(
        "build", str(ROOT / "blueprints/debian-uki-sdboot.toml"), "-o", str(out), "--json=short"
    )
    build_json_path(out).write_text(built.stdout)
    return out


def build_json_path(out: Path) -> Path:
    """Where the default_image fixture keeps what `build --json=short` printed (beside, not
    in, the output directory)."""
    return out.parent / f"{out.name}.build.json"


def cli_json_schema(kind: str) -> dict[str, Any]:
    """The schema of a command's --json output (tests/data/cli-json-schemas.json)."""
    schemas: dict[str, Any] = json.loads((ROOT / "tests/data/cli-json-schemas.json").read_text())
    return dict(schemas[kind])


def manifest_path(out: Path) -> Path:
    """The one image manifest, NAME.manifest.json, in a build's output directory."""
    (path,) = out.glob("*.manifest.json")
    return path


def manifest(out: Path) -> dict[str, Any]:
    """The build's manifest, checked against composer/data/manifest.schema.json first: every
    manifest an integration test reads is one the schema accepts."""
    data: dict[str, Any] = json.loads(manifest_path(out).read_text())
    schema_validator().validate(data)
    return data


@functools.cache
def schema_validator() -> Any:
    schema = json.loads((ROOT / "composer/data/manifest.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def private_key_pieces(path: Path) -> list[bytes]:
    """Pieces of the PEM private key at ``path`` as PEM text and as DER bytes: what a scan
    looks for to prove the key reached no image or log."""
    from cryptography.hazmat.primitives import serialization

    pem = path.read_bytes()
    body = [ln for ln in pem.splitlines() if ln and not ln.startswith(b"-----")]
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return [body[1], body[len(body) // 2], der[len(der) // 2 : len(der) // 2 + 48]]


def found_in(path: Path, needles: list[bytes]) -> list[bytes]:
    """Which needles occur in the file (chunked scan with overlap; holes read as zeros)."""
    hits: set[bytes] = set()
    overlap = max(len(n) for n in needles)
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(16 << 20):
            buf = tail + chunk
            hits.update(n for n in needles if n in buf)
            tail = buf[-overlap:]
    return sorted(hits)
