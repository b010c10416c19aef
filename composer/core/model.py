"""The one pydantic base class for the composer's typed documents (blueprint tables, the image
manifest): unknown keys are errors, values are frozen, and nothing is coerced (a string is
never read as a number or a boolean: the key's type is what the input must have)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
