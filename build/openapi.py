"""Render the handler's OpenAPI document for a built model (committed as openapi.json and
checked by tests, so an API change is always a visible diff).

    python -m build.openapi dist/digits > openapi.json      (scripts/openapi does this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def render(model_dir: Path) -> str:
    from handler.app import create_app
    from handler.model import load_model

    app = create_app(load_model(model_dir, intra_op_threads=1))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/digits")))
