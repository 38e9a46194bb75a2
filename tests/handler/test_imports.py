"""Cold start is a feature: importing the handler must not pull in heavy or build-time code, and
its own imports must stay cheap next to the floor's (onnxruntime + numpy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from repo import REPO_ROOT

# fastapi/starlette: the runtime app is a lean ASGI router (FastAPI's import alone is ~2x the
# cold-start floor); FastAPI only declares the API at build time. pydantic: the handler reads
# the build's validated manifest and checks requests without it (handler/manifest_file.py,
# handler/messages.py); it is imported only for a manifest without an intact stamp or a request
# the quick check refuses, to word the schema's 422.
FORBIDDEN = (
    "torch", "onnx", "build", "infra", "sklearn", "transformers", "matplotlib", "scipy", "pandas",
    "fastapi", "starlette", "tokenizers", "pydantic", "pydantic_core",
)
# Everything outside the standard library that a cold start of a classification model may load.
ALLOWED_THIRD_PARTY = {
    "slimserve", "onnxruntime", "numpy", "orjson", "mangum", "aws_lambda_powertools",
    "jmespath", "typing_extensions", "botocore",  # Powertools' correlation-id paths and user agent
    "snapshot_restore_py",  # SnapStart hooks (handler/snapstart.py), from Lambda's runtime
}
# Runs under a loaded machine: the least-disturbed of a few fresh interpreters is the estimate.
RUNS = 5
# The handler's own imports and init (model load included) may cost at most as much as
# importing onnxruntime and numpy in the same interpreter (before pydantic left the path: ~1.3x).
BUDGET_VS_FLOOR = 1.0

_PROBE = """
import json, sys, time
started = time.perf_counter()
import numpy, onnxruntime
floor = time.perf_counter()
before = set(sys.modules)
import slimserve.handler.main
done = time.perf_counter()
loaded = {name.split('.')[0] for name in set(sys.modules) - before}
print(json.dumps({
    "floor_ms": (floor - started) * 1e3,
    "handler_ms": (done - floor) * 1e3,
    "third_party": sorted(loaded - set(sys.stdlib_module_names) - {name for name in loaded if name.startswith(("_", "__"))}),
    "all": sorted({name.split('.')[0] for name in sys.modules}),
}))
"""


def _probe(model_dir: Path) -> dict:
    env = {**os.environ, "SLIMSERVE_MODEL_DIR": str(model_dir), "SLIMSERVE_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_handler_main_imports_nothing_heavy(digits_build: Path) -> None:
    probe = _probe(digits_build)
    loaded = set(probe["all"])
    assert {"onnxruntime", "numpy", "mangum", "aws_lambda_powertools"} <= loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
    assert set(probe["third_party"]) <= ALLOWED_THIRD_PARTY, set(probe["third_party"]) - ALLOWED_THIRD_PARTY


def test_handler_import_and_init_fit_the_budget(digits_build: Path) -> None:
    _probe(digits_build)  # byte-compile and warm the page cache first
    probes = [_probe(digits_build) for _ in range(RUNS)]
    ratios = sorted(probe["handler_ms"] / probe["floor_ms"] for probe in probes)
    detail = [f"{probe['handler_ms']:.0f} vs {probe['floor_ms']:.0f} ms" for probe in probes]
    assert ratios[0] <= BUDGET_VS_FLOOR, f"handler import + init / (onnxruntime + numpy): {ratios}; {detail}"


def test_handler_serves_without_pydantic(digits_build: Path) -> None:
    """pydantic is not needed to load a built model or to answer a valid request."""
    code = (
        "import sys, json; sys.modules['pydantic'] = None; sys.modules['pydantic_core'] = None\n"
        "import slimserve.handler.main as main\n"
        f"body = open({str(REPO_ROOT / 'examples' / 'digits' / 'request.json')!r}, 'rb').read()\n"
        "reply = main.app.service.infer('digits', None, body, None)\n"
        "print(sorted(output['name'] for output in json.loads(reply.body)['outputs']))"
    )
    env = {**os.environ, "SLIMSERVE_MODEL_DIR": str(digits_build), "SLIMSERVE_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "['label', 'score']"


def test_handler_sources_never_import_build_or_infra() -> None:
    root = REPO_ROOT / "handler"
    for path in root.glob("*.py"):
        text = path.read_text()
        for room in ("build", "infra", "torch"):
            assert f"from {room}" not in text and f"import {room}" not in text, (path, room)
