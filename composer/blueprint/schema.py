"""The JSON schema of a blueprint (composer/blueprint/model.py), for editors that check TOML
against a JSON schema (taplo, Even Better TOML): ``composer/data/blueprint.schema.json``,
generated from the model (a unit test keeps the committed file the generated one).
Regenerate it with ``python -m composer.blueprint.schema``.

The schema says what the model's types say; rules across keys (a partition layout that
fits, a user that exists) are the composer's to judge (`dps-composer plan`)."""

from __future__ import annotations

import sys
from typing import Any

from composer import DATA
from composer.blueprint.model import Blueprint
from composer.core.files import regenerate
from composer.core.model import json_schema, schema_text

SCHEMA_FILE = DATA / "blueprint.schema.json"


def schema() -> dict[str, Any]:
    return json_schema(
        Blueprint,
        "https://dps-composer.invalid/blueprint.schema.json",
        "dps-composer blueprint (TOML)",
    )


def text() -> str:
    return schema_text(schema())


def main(argv: list[str]) -> int:
    return regenerate(argv, SCHEMA_FILE, text())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
