"""One machine-readable convention: --json=pretty|short on stdout (messages on stderr),
--json-file FILE and --junit FILE never written over a disk image. Each command's JSON is
checked against its schema in tests/data/cli-json-schemas.json (build, boot and uki-virt in
their integration tests)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from composer.build.cache import StageCache

from ..cli_run import cli

SCHEMAS = json.loads((Path(__file__).parents[2] / "data" / "cli-json-schemas.json").read_text())


def check(kind: str, data: Any) -> None:
    jsonschema.validate(data, SCHEMAS[kind], format_checker=jsonschema.FormatChecker())


def blank(tmp_path: Path) -> Path:
    image = tmp_path / "blank.raw"
    image.write_bytes(b"\0" * 2**20)
    return image


def test_short_is_one_line_and_pretty_is_indented(tmp_path: Path) -> None:
    image = blank(tmp_path)
    short, pretty = cli("inspect", image, "--json=short"), cli("inspect", image, "--json", "pretty")
    assert short.stdout.count("\n") == 1 and pretty.stdout.startswith("{\n  ")
    assert json.loads(short.stdout) == json.loads(pretty.stdout)
    check("inspect", json.loads(short.stdout))
    assert short.returncode == pretty.returncode == 1  # the exit code still says "not discoverable"


def test_json_file_writes_the_same(tmp_path: Path) -> None:
    image, target = blank(tmp_path), tmp_path / "inspect.json"
    done = cli("inspect", image, "--json-file", target)
    assert "root auto-discovery: NO" in done.stdout  # the human report still on stdout
    assert json.loads(target.read_text()) == json.loads(
        cli("inspect", image, "--json=short").stdout
    )


def test_json_needs_a_style_so_an_image_is_never_taken_for_a_file(tmp_path: Path) -> None:
    """`boot --json a.qcow2 b.qcow2` once wrote the verdict over a.qcow2."""
    a = blank(tmp_path)
    before = a.read_bytes()
    done = cli("boot", "--json", a, a)
    assert done.returncode == 2 and "is not one of 'pretty', 'short'" in done.stderr
    assert a.read_bytes() == before


@pytest.mark.parametrize("option", ["--json-file", "--junit"])
def test_reports_never_replace_a_disk_image(tmp_path: Path, option: str) -> None:
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1M"], check=True)
    before = disk.read_bytes()
    done = cli("boot", blank(tmp_path), option, disk)  # refused before anything boots
    assert done.returncode == 2 and "a qcow2; refusing to overwrite it" in done.stderr
    assert disk.read_bytes() == before


def test_inspect_json_file_never_replaces_a_disk_image(tmp_path: Path) -> None:
    image = blank(tmp_path)
    done = cli("inspect", image, "--json-file", image)
    assert done.returncode == 2 and "refusing to overwrite" in done.stderr
    assert image.read_bytes() == b"\0" * 2**20


def test_an_earlier_report_is_replaced(tmp_path: Path) -> None:
    image, target = blank(tmp_path), tmp_path / "old.json"
    target.write_text('{"old": true}\n')
    cli("inspect", image, "--json-file", target)
    assert json.loads(target.read_text())["image"] == str(image)


def test_cache_list(tmp_path: Path) -> None:
    assert json.loads(cli("cache", "list", "--cache-dir", tmp_path, "--json=short").stdout) == []
    StageCache(tmp_path).put("tree", "k1", lambda d: (d / "f").write_bytes(b"x" * 1000))
    done = cli("cache", "list", "--cache-dir", tmp_path, "--json=pretty")
    entries = json.loads(done.stdout)
    check("cache-list", entries)
    assert [(e["stage"], e["key"], e["problem"]) for e in entries] == [("tree", "k1", None)]


def test_keys_generate(tmp_path: Path) -> None:
    done = cli("keys", "generate", tmp_path / "keys", "--json=short")
    assert done.returncode == 0 and "wrote" in done.stderr
    data = json.loads(done.stdout)
    check("keys", data)
    assert all(Path(f).is_file() for f in data["files"])


def test_report_directory_must_be_a_directory(tmp_path: Path) -> None:
    """`boot --report DIR` is refused before anything boots when DIR is a file."""
    target = tmp_path / "report"
    target.write_text("not a directory")
    done = cli("boot", blank(tmp_path), "--report", target)
    assert done.returncode == 2 and "not a directory" in done.stderr
    assert target.read_text() == "not a directory"
