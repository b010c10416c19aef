"""A TPM state kept across boots (`boot --tpm-state`): set up once, then reused as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from composer.judge.tpm import STATE_FILE, has_state, swtpm

needs_swtpm = pytest.mark.skipif(
    shutil.which("swtpm") is None or shutil.which("swtpm_setup") is None,
    reason="swtpm and swtpm_setup are not installed",
)


def test_an_empty_directory_has_no_state(tmp_path: Path) -> None:
    assert not has_state(tmp_path)
    (tmp_path / STATE_FILE).write_bytes(b"x")
    assert has_state(tmp_path)


@needs_swtpm
def test_a_kept_state_is_set_up_once_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "w1").mkdir()
    with swtpm(tmp_path / "w1", state=state) as handle:
        assert handle.state_dir == state.resolve()
    assert has_state(state)
    (tmp_path / "w2").mkdir()
    with swtpm(tmp_path / "w2", state=state) as handle:
        assert handle.state_dir == state.resolve()
    assert not (tmp_path / "w2" / "swtpm_setup.log").exists()  # not set up again
    assert (tmp_path / "w2" / "tpm").exists() is False


@needs_swtpm
def test_without_a_kept_state_every_boot_gets_a_fresh_tpm(tmp_path: Path) -> None:
    with swtpm(tmp_path) as handle:
        assert handle.state_dir == (tmp_path / "tpm").resolve()
        assert (tmp_path / "swtpm_setup.log").exists()
