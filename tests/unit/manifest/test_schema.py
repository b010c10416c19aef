"""composer/data/manifest.schema.json is the JSON schema of the manifest model, and a
manifest the model accepts is one the schema accepts (and the other way round)."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from composer.build import describe
from composer.core import version
from composer.manifest import schema
from composer.manifest.model import Manifest

from .. import manifests


def test_the_committed_schema_is_the_generated_one() -> None:
    assert schema.SCHEMA_FILE.read_text() == schema.text(), (
        "composer/data/manifest.schema.json is stale: python -m composer.manifest.schema"
    )


def validator() -> jsonschema.protocols.Validator:
    data = json.loads(schema.SCHEMA_FILE.read_text())
    cls = jsonschema.validators.validator_for(data)
    cls.check_schema(data)
    return cls(data)


def test_a_manifest_the_model_writes_follows_the_schema() -> None:
    data = manifests.manifest(outputs=[manifests.output("img.raw", b"disk")])
    written = json.loads(Manifest.model_validate(data, strict=False).to_json())
    assert written == data  # nothing dropped, nothing added
    validator().validate(written)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("manifest_version",), 2),
        (("expect", "tpm"), "yes"),
        (("boot", "loader"), "lilo"),
        (("outputs",), [{"file": "img.raw"}]),
        (("unknown",), 1),
    ],
)
def test_the_schema_refuses_what_the_model_refuses(where: tuple[str, ...], value: object) -> None:
    data = copy.deepcopy(manifests.manifest())
    part = data
    for key in where[:-1]:
        part = part[key]
    part[where[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(data)
    with pytest.raises(ValueError):
        Manifest.model_validate_json(json.dumps(data))


@pytest.mark.parametrize("commit", ["0123abc", None])
def test_the_composer_that_built_it_is_recorded(commit: str | None) -> None:
    data = manifests.manifest(composer={"version": "0.1.0", "commit": commit})
    validator().validate(data)
    assert Manifest.model_validate(data).composer is not None
    older = manifests.manifest()  # written before the composer was recorded
    validator().validate(older)
    assert "composer" not in json.loads(Manifest.model_validate(older).to_json())


def test_a_build_records_this_composer() -> None:
    assert describe.composer_record().model_dump() == version.current().to_dict()
