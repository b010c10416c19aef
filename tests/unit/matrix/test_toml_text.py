"""The cell blueprint's TOML text reads back as the data it was written from."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from composer.matrix.toml_text import NotExpressible, dumps

from .matrices import DEFAULT

scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))
keys = st.text(min_size=1, max_size=8)


def test_the_default_blueprint_round_trips() -> None:
    data = tomllib.loads(DEFAULT.read_text())
    assert tomllib.loads(dumps(data)) == data


@given(
    st.dictionaries(
        keys,
        st.one_of(
            scalars,
            st.lists(scalars, max_size=3),
            st.dictionaries(keys, scalars, max_size=3),
            st.lists(
                st.dictionaries(keys, scalars, min_size=1, max_size=3), min_size=1, max_size=2
            ),
        ),
        max_size=5,
    )
)
def test_any_blueprint_shaped_data_round_trips(data: dict[str, Any]) -> None:
    try:
        text = dumps(data)
    except NotExpressible:
        return  # refused rather than changed (e.g. mixed arrays)
    assert tomllib.loads(text) == data


def test_what_toml_cannot_hold_is_refused() -> None:
    with pytest.raises(NotExpressible):
        dumps({"a": float("nan")})
    with pytest.raises(NotExpressible):
        dumps({"a": None})
