"""Canary requests: a few held-out inputs and the shipped model's answers, recorded in the manifest.

At deploy time the stack's pre-traffic hook (infra/hooks.py, infra/canary_hook.py) replays these
requests against the new Lambda version before CodeDeploy shifts any traffic to it, and fails
the deployment when the answers disagree beyond the gate's tolerance. So the expected answers
must be exactly what the deployed code computes: they come from the bundled model through the
handler's own load path and service (``load_model`` + ``create_app``), on requests in the
Open Inference Protocol JSON form the hook sends.

What is compared (``CanaryCheck``) follows the gate's metric:
- ``accuracy`` -> ``top1``: the arg-max of the first output must agree on at least
  ``1 - validation.tolerance`` of the samples. The samples are the held-out rows whose top-1
  margin is largest, one per predicted class first: a different CPU on Lambda (int8 rounding)
  cannot flip them, and a broken model that answers one class for everything cannot pass.
- ``cosine`` -> ``cosine``: every vector must reach ``validation.min_cosine`` with the recorded one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.gate.reference import load_dataset
from slimserve.handler.app import create_app
from slimserve.handler.datatypes import FLOAT_DATATYPES
from slimserve.handler.errors import SlimserveError
from slimserve.handler.manifest import (
    MANIFEST_FILE,
    Canary,
    CanaryCheck,
    CanarySample,
    Manifest,
)
from slimserve.handler.model import load_model
from slimserve.handler.service import InferenceService

CANARY_SAMPLES = 5
# Held-out rows run through the model to choose the samples from (bounds the build time).
MAX_CANDIDATES = 64
# The samples travel in the manifest (lambda.zip) and in the hook's code package: keep them small.
MAX_REQUEST_BYTES = 32 * 1024
# float32 carries ~7 significant digits; more would only grow the manifest.
EXPECTED_DIGITS = 7


def record_canary(config: BuildConfig, out: Path, manifest: Manifest) -> Manifest:
    """Add ``canary`` to ``out/manifest.json`` (rewritten) and return the updated manifest.

    Returns the manifest unchanged when no held-out request fits (inputs too large for the
    manifest, or none the model accepts): the hook then checks health only.
    """
    check = _check_for(config, manifest)
    if check is None:
        return manifest
    inputs, _labels = load_dataset(config, config.validation.data, "validation.data")
    if {spec.name for spec in manifest.inputs} - set(inputs):
        return manifest
    service = create_app(load_model(out, intra_op_threads=1)).service
    candidates = [
        sample
        for row in range(min(MAX_CANDIDATES, _row_count(inputs)))
        if (sample := _answer(service, manifest, check.output, inputs, row)) is not None
    ]
    samples = _choose(candidates, check.metric)
    if not samples:
        return manifest
    updated = manifest.model_copy(update={"canary": Canary(check=check, samples=samples)})
    (out / MANIFEST_FILE).write_text(updated.to_json(), encoding="utf-8")
    return updated


def _check_for(config: BuildConfig, manifest: Manifest) -> CanaryCheck | None:
    validation = config.validation
    # The output the gate scored; older manifests: the first output, the model's own (logits,
    # vector), before the ones tasks append.
    output = (manifest.validation.output if manifest.validation is not None else None) or manifest.outputs[0].name
    if validation.metric != "cosine":
        output = _top1_output(manifest, output)
        if output is None:
            return None  # nothing numeric to compare: the hook checks health only
    if validation.metric == "cosine":
        return CanaryCheck(output=output, metric="cosine", threshold=validation.min_cosine)
    return CanaryCheck(output=output, metric="top1", threshold=1.0 - validation.tolerance)


def _top1_output(manifest: Manifest, scored: str) -> str | None:
    """The output whose arg-max the canary compares: the scored one when it holds scores (float
    [batch, classes]), else the model's first such output (a raw model scored on its label
    tensor also returns the probabilities), else the scored one if it is numeric at all."""
    specs = {spec.name: spec for spec in manifest.outputs}
    scores = [spec.name for spec in manifest.outputs if spec.datatype in FLOAT_DATATYPES and len(spec.shape) == 2]
    if scored in scores:
        return scored
    if scores:
        return scores[0]
    return scored if scored in specs and specs[scored].datatype != "BYTES" else None


def _row_count(inputs: dict[str, np.ndarray]) -> int:
    return min(len(array) for array in inputs.values())


def _request(manifest: Manifest, output: str, inputs: dict[str, np.ndarray], row: int) -> dict[str, Any]:
    """Row ``row`` of the held-out inputs as a batch-1 JSON inference request for ``output``."""
    return batch_request(manifest, inputs, slice(row, row + 1), [output], f"canary-{row}")


def batch_request(
    manifest: Manifest, inputs: dict[str, np.ndarray], rows: slice, outputs: list[str], request_id: str
) -> dict[str, Any]:
    """Rows ``rows`` of the held-out inputs as one JSON inference request asking for ``outputs``
    (as JSON, not binary tensors)."""
    tensors = []
    for spec in manifest.inputs:
        value = np.asarray(inputs[spec.name][rows])
        tensors.append(
            {
                "name": spec.name,
                "shape": list(value.shape),
                "datatype": spec.datatype,
                "data": value.reshape(-1).tolist(),
            }
        )
    return {
        "id": request_id,
        "inputs": tensors,
        "outputs": [{"name": output, "parameters": {"binary_data": False}} for output in outputs],
    }


def _answer(
    service: InferenceService,
    manifest: Manifest,
    output: str,
    inputs: dict[str, np.ndarray],
    row: int,
) -> CanarySample | None:
    request = _request(manifest, output, inputs, row)
    body = json.dumps(request, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_REQUEST_BYTES:
        return None
    try:
        reply = service.infer(manifest.name, None, body, None)
    except SlimserveError:  # a held-out row outside the API's limits: not a canary
        return None
    (answer,) = json.loads(reply.body)["outputs"]
    expected = [float(f"{float(value):.{EXPECTED_DIGITS}g}") for value in answer["data"]]
    return CanarySample(request=request, expected=expected)


def _choose(candidates: list[CanarySample], metric: str) -> list[CanarySample]:
    if metric == "cosine":
        return candidates[:CANARY_SAMPLES]
    # Largest top-1 margin first; the best sample of each predicted class before any second one.
    ranked = sorted(candidates, key=_top1_margin, reverse=True)
    chosen: list[CanarySample] = []
    classes: set[int] = set()
    for sample in ranked:
        predicted = int(np.argmax(sample.expected))
        if predicted not in classes:
            classes.add(predicted)
            chosen.append(sample)
    chosen += [sample for sample in ranked if sample not in chosen]
    return chosen[:CANARY_SAMPLES]


def _top1_margin(sample: CanarySample) -> float:
    values = np.sort(np.asarray(sample.expected, dtype=np.float64))
    return float(values[-1] - values[-2]) if len(values) > 1 else float("inf")
