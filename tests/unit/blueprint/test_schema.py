"""composer/data/blueprint.schema.json is the JSON schema of the blueprint model (for editors),
current, and every shipped blueprint follows it; a wrong type is refused by both."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from composer.blueprint import schema

BLUEPRINTS = sorted((Path(__file__).parents[3] / "blueprints").glob("*.toml"))


def test_the_committed_schema_is_the_generated_one() -> None:
    assert schema.SCHEMA_FILE.read_text() == schema.text(), (
        "composer/data/blueprint.schema.json is stale: python -m composer.blueprint.schema"
    )


def validator() -> jsonschema.protocols.Validator:
    data = schema.schema()
    cls = jsonschema.validators.validator_for(data)
    cls.check_schema(data)
    return cls(data)


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.name)
def test_shipped_blueprints_follow_it(path: Path) -> None:
    validator().validate(tomllib.loads(path.read_text()))


@pytest.mark.parametrize(
    "bad",
    [{"name": 5}, {"name": "x", "unknown": 1}, {"name": "x", "customizations": {"hostname": 1}}],
)
def test_wrong_types_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(bad)
