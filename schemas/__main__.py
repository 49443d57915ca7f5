"""``python -m schemas``: write the JSON Schema of every message beside this module.

For producers not written in Python (a Jira plugin is Java). A test fails when the
committed files differ from what the models generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.messages import MODELS

HERE = Path(__file__).parent


def generated() -> dict[Path, str]:
    """File path -> JSON text, for every message type."""
    out = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema(mode="validation")
        # Python fills these in by default; every other producer must send them.
        schema["required"] = ["type", "schema_version", *schema.get("required", [])]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://assetsync.example/schemas/{name}.schema.json"
        out[HERE / f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    for path, text in generated().items():
        path.write_text(text)
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
