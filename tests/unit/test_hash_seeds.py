"""The cross-process determinism helper really varies what hashing decides."""

from __future__ import annotations

import pytest

from .hash_seeds import SEEDS, assert_same_across_processes, outputs_per_seed


def test_each_process_gets_its_own_hash_seed() -> None:
    printed = outputs_per_seed('print(hash("dps-composer"))')
    assert len(set(printed.values())) == len(SEEDS)


def test_set_order_that_leaks_into_output_is_caught() -> None:
    leaky = 'print(list({"root", "usr", "esp", "home", "srv", "var", "tmp", "swap"}))'
    with pytest.raises(AssertionError, match="PYTHONHASHSEED"):
        assert_same_across_processes(leaky)
