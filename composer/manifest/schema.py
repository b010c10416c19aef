"""The JSON schema of the manifest (composer/manifest/model.py), as other tools read it:
``composer/data/manifest.schema.json``, generated from the model (a unit test keeps the
committed file the generated one). Regenerate it with ``python -m composer.manifest.schema``.
"""

from __future__ import annotations

import sys

from composer import DATA
from composer.core.model import CommittedSchema
from composer.manifest.model import MANIFEST_VERSION, Manifest

SCHEMA = CommittedSchema(
    Manifest,
    f"https://dps-composer.invalid/manifest-{MANIFEST_VERSION}.schema.json",
    "dps-composer image manifest (NAME.manifest.json)",
    DATA / "manifest.schema.json",
)
SCHEMA_FILE, schema, text = SCHEMA.file, SCHEMA.schema, SCHEMA.text

if __name__ == "__main__":
    sys.exit(SCHEMA.main(sys.argv[1:]))
