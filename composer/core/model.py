"""The one pydantic base class for the composer's typed documents (blueprint tables, the image
manifest): unknown keys are errors, values are frozen, and nothing is coerced (a string is
never read as a number or a boolean: the key's type is what the input must have)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def json_schema(model: type[BaseModel], schema_id: str, title: str) -> dict[str, Any]:
    """The JSON schema of a document model, as the committed schema files hold it (the
    model's docstring is its description)."""
    generated = model.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id,
        **generated,
        "title": title,
        "description": (model.__doc__ or "").strip() or title,
    }


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
