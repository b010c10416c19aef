"""The JSON schema of a blueprint (composer/blueprint/model.py), for editors that check TOML
against a JSON schema (taplo, Even Better TOML): ``composer/data/blueprint.schema.json``,
generated from the model (a unit test keeps the committed file the generated one).
Regenerate it with ``python -m composer.blueprint.schema``.

The schema says what the model's types say; rules across keys (a partition layout that
fits, a user that exists) are the composer's to judge (`dps-composer plan`)."""

from __future__ import annotations

import sys

from composer import DATA
from composer.blueprint.model import Blueprint
from composer.core.model import CommittedSchema

SCHEMA = CommittedSchema(
    Blueprint,
    "https://dps-composer.invalid/blueprint.schema.json",
    "dps-composer blueprint (TOML)",
    DATA / "blueprint.schema.json",
)
SCHEMA_FILE, schema, text = SCHEMA.file, SCHEMA.schema, SCHEMA.text

if __name__ == "__main__":
    sys.exit(SCHEMA.main(sys.argv[1:]))
