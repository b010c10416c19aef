"""`boot --tpm-state`, `--writable` and `--vcpus`: refused before anything boots where they
cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from composer.cli.commands import app
from composer.judge import run as judge_run
from composer.judge.run import BootOptions

from ..cli_run import cli


def blank(tmp_path: Path, name: str = "blank.raw") -> Path:
    image = tmp_path / name
    image.write_bytes(b"\0" * 2**20)
    return image


def test_a_tpm_state_needs_a_tpm(tmp_path: Path) -> None:
    done = cli("boot", blank(tmp_path), "--tpm-state", tmp_path / "s", "--no-tpm")
    assert done.returncode == 2 and "--tpm-state" in done.stderr and "--no-tpm" in done.stderr


def test_a_tpm_state_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("x")
    done = cli("boot", blank(tmp_path), "--tpm-state", tmp_path / "s")
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_a_sequence_boots_one_image(tmp_path: Path) -> None:
    images = [blank(tmp_path, "a.raw"), blank(tmp_path, "b.raw")]
    for option in (["--tpm-state", str(tmp_path / "s")], ["--writable"]):
        done = cli("boot", *images, *option)
        assert done.returncode == 2 and f"{option[0]}: boots one image" in done.stderr
    assert not (tmp_path / "s").exists()


def test_vcpus_out_of_range_or_not_a_number_is_refused_before_a_boot(tmp_path: Path) -> None:
    for value in ("0", "65", "two"):
        done = cli("boot", blank(tmp_path), "--vcpus", value)
        assert done.returncode == 2 and "--vcpus" in done.stderr, done.stderr


def test_vcpus_come_from_the_environment_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DPS_COMPOSER_VCPUS", "0")
    done = cli("boot", blank(tmp_path))
    assert done.returncode == 2 and "DPS_COMPOSER_VCPUS" in done.stderr, done.stderr


def test_vcpus_reach_the_boot_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[int | None] = []

    def boot_many(images: object, opts: BootOptions, jobs: int, console: object) -> list[object]:
        seen.append(opts.smp)
        return []

    monkeypatch.setattr(judge_run, "boot_many", boot_many)  # imported by the command
    runner = CliRunner()
    image = blank(tmp_path)
    assert runner.invoke(app, ["boot", str(image), "--vcpus", "1"]).exit_code == 0
    monkeypatch.setenv("DPS_COMPOSER_VCPUS", "3")
    assert runner.invoke(app, ["boot", str(image)]).exit_code == 0
    assert runner.invoke(app, ["boot", str(image), "--vcpus", "2"]).exit_code == 0
    monkeypatch.delenv("DPS_COMPOSER_VCPUS")
    assert runner.invoke(app, ["boot", str(image)]).exit_code == 0
    assert seen == [1, 3, 2, None]
