"""Fixtures shared by unit tests."""

from __future__ import annotations

import pytest

from composer.rootfs import resolve


@pytest.fixture(params=["kernel", "walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once resolving tree paths with openat2 and once with the user-space walk
    (what a kernel without openat2 gets)."""
    if request.param == "kernel" and not resolve.kernel_resolution():
        pytest.skip("kernel without openat2")
    monkeypatch.setattr(resolve, "_kernel_ok", request.param == "kernel")
    return str(request.param)
