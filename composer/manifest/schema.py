"""The JSON schema of the manifest (composer/manifest/model.py), as other tools read it:
``composer/data/manifest.schema.json``, generated from the model (a unit test keeps the
committed file the generated one). Regenerate it with ``python -m composer.manifest.schema``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from composer import DATA
from composer.core.files import atomic_write
from composer.manifest.model import MANIFEST_VERSION, Manifest

SCHEMA_FILE = DATA / "manifest.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema() -> dict[str, Any]:
    generated = Manifest.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": DIALECT,
        "$id": f"https://dps-composer.invalid/manifest-{MANIFEST_VERSION}.schema.json",
        **generated,
        "title": "dps-composer image manifest (NAME.manifest.json)",
        "description": (Manifest.__doc__ or "").strip() or "The image manifest.",
    }


def text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else SCHEMA_FILE
    atomic_write(target, text())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
