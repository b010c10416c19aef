"""The JSON schema of the manifest (composer/manifest/model.py), as other tools read it:
``composer/data/manifest.schema.json``, generated from the model (a unit test keeps the
committed file the generated one). Regenerate it with ``python -m composer.manifest.schema``.
"""

from __future__ import annotations

import sys
from typing import Any

from composer import DATA
from composer.core.files import regenerate
from composer.core.model import json_schema, schema_text
from composer.manifest.model import MANIFEST_VERSION, Manifest

SCHEMA_FILE = DATA / "manifest.schema.json"


def schema() -> dict[str, Any]:
    return json_schema(
        Manifest,
        f"https://dps-composer.invalid/manifest-{MANIFEST_VERSION}.schema.json",
        "dps-composer image manifest (NAME.manifest.json)",
    )


def text() -> str:
    return schema_text(schema())


def main(argv: list[str]) -> int:
    return regenerate(argv, SCHEMA_FILE, text())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
