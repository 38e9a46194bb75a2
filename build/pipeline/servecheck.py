"""Before anything is bundled: the built model folder (model.onnx + manifest.json) is loaded
through the handler's own path (``load_model`` + ``InferenceService``, what Lambda runs) and
answers every held-out request, as JSON Open Inference Protocol requests of
``validation.batch_size`` rows (the batches the gate ran). The answers must be the ones the gate
scored; a model the server would refuse, or answer differently, is never zipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ServeCheckFailed
from slimserve.build.gate.validate import GateResult
from slimserve.build.pipeline.canary import batch_request
from slimserve.handler.datatypes import V2_TO_NUMPY
from slimserve.handler.errors import SlimserveError
from slimserve.handler.manifest import Manifest
from slimserve.handler.model import load_model
from slimserve.handler.service import InferenceService


def decode_outputs(body: bytes) -> dict[str, np.ndarray]:
    """A JSON inference response's outputs as arrays (BYTES as Python strings)."""
    arrays = {}
    for output in json.loads(body)["outputs"]:
        dtype = object if output["datatype"] == "BYTES" else V2_TO_NUMPY[output["datatype"]]
        arrays[output["name"]] = np.array(output["data"], dtype=dtype).reshape(output["shape"])
    return arrays


def served_answers(service: InferenceService, manifest: Manifest, inputs: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Every API output for ``inputs``, asked for ``batch_size`` rows at a time."""
    outputs = [spec.name for spec in manifest.outputs]
    count = len(next(iter(inputs.values())))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, count, batch_size):
        rows = slice(start, min(start + batch_size, count))
        body = json.dumps(batch_request(manifest, inputs, rows, outputs, f"serve-check-{start}")).encode("utf-8")
        try:
            reply = service.infer(manifest.name, None, body, None)
        except SlimserveError as exc:
            raise ServeCheckFailed(
                f"the handler refuses held-out rows {rows.start}..{rows.stop - 1} (HTTP {exc.status_code}): {exc.message}; "
                "nothing was bundled"
            ) from None
        for name, array in decode_outputs(reply.body).items():
            parts.setdefault(name, []).append(array)
    return {name: np.concatenate(arrays, axis=0) for name, arrays in parts.items()}


def check_served(config: BuildConfig, folder: Path, manifest: Manifest, evaluator: Any, gate: GateResult) -> str:
    """Answer the held-out requests through the handler; raise ServeCheckFailed unless they are
    what the gate scored. Returns a one-line summary for the build log."""
    try:
        service = InferenceService(load_model(folder, intra_op_threads=1))
    except SlimserveError as exc:
        raise ServeCheckFailed(f"the handler refuses the built model: {exc.message}; nothing was bundled") from None
    inputs = evaluator.request_inputs()
    answers = served_answers(service, manifest, inputs, config.validation.batch_size)
    served = evaluator.predictions(answers)
    rows = len(served)
    if gate.predictions is not None:
        different = evaluator.disagreements(served, gate.predictions)
        if different:
            raise ServeCheckFailed(
                f"the handler answers {different} of {rows} held-out requests differently from what the gate scored "
                f"(output {gate.output!r}); nothing was bundled"
            )
    return f"the handler loads the model and answers all {rows} held-out rows as the gate scored them ({gate.output})"
