"""Cold start is a feature: importing the handler must not pull in heavy or build-time code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from repo import REPO_ROOT

# fastapi/starlette: the runtime app is a lean ASGI router (FastAPI's import alone is ~2x the
# cold-start floor); FastAPI only declares the API at build time.
FORBIDDEN = (
    "torch", "onnx", "build", "infra", "sklearn", "transformers", "matplotlib", "scipy", "pandas",
    "fastapi", "starlette", "tokenizers",
)


def test_handler_main_imports_nothing_heavy(digits_build: Path) -> None:
    code = (
        "import sys, json; import slimserve.handler.main; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    env = {**os.environ, "SLIMSERVE_MODEL_DIR": str(digits_build), "SLIMSERVE_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert {"onnxruntime", "numpy", "mangum", "pydantic", "aws_lambda_powertools"} <= loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)


def test_handler_sources_never_import_build_or_infra() -> None:
    root = REPO_ROOT / "handler"
    for path in root.glob("*.py"):
        text = path.read_text()
        for room in ("build", "infra", "torch"):
            assert f"from {room}" not in text and f"import {room}" not in text, (path, room)
