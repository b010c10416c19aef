"""`boot --tpm-state` and `--writable`: refused before anything boots where they cannot work."""

from __future__ import annotations

from pathlib import Path

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
