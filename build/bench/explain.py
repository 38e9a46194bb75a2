"""Section 6, warm explain latency: ``POST .../explain`` through Mangum and the app, in process,
after a warm-up (the explainer is built and its cost model calibrated on the first request).

Tensor models explain the example's own request (digits: a held-out 4) with the model's default
method and budget; text models explain the benchmark sentence (16 tokens with [CLS] and [SEP])
against a shorter paraphrase, with the default method and budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from slimserve.build.bench.common import Example, LambdaContextStub, http_api_event, infer_body
from slimserve.build.bench.stats import summarize_ms

TARGET_TEXT = "A fox jumps over a dog by the river."


def explain_body(example: Example) -> bytes:
    """The infer request of the suite, plus the target an embedding's explanation needs."""
    body = json.loads(infer_body(example))
    if example.is_text:
        body["inputs"][0]["shape"], body["inputs"][0]["data"] = [1], body["inputs"][0]["data"][:1]
        body["parameters"] = {**body.get("parameters", {}), "target": TARGET_TEXT}
    return json.dumps(body).encode()


def measure_explain(
    example: Example,
    *,
    runs: int = 30,
    warmup: int = 3,
    threads: int = 1,
    status: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    from slimserve.handler.app import create_app
    from slimserve.handler.gateway import make_lambda_handler
    from slimserve.handler.model import load_model

    status(f"{example.name}: warm explain latency")
    model = load_model(example.dist, intra_op_threads=threads)
    if model.manifest.explain is None:
        raise RuntimeError(f"{example.name} was built without explanations (explain.enabled = false)")
    handler = make_lambda_handler(create_app(model))
    path = f"/v2/models/{example.name}/explain"
    event = http_api_event("POST", path, explain_body(example))
    context = LambdaContextStub()
    samples: list[float] = []
    document: dict[str, Any] = {}
    for index in range(warmup + runs):
        started = time.perf_counter()
        result = handler(event, context)
        elapsed = time.perf_counter() - started
        if result.get("statusCode") != 200:
            raise RuntimeError(f"{example.name}: explain answered {result.get('statusCode')}: {result.get('body')}")
        if index >= warmup:
            samples.append(elapsed)
        document = json.loads(result["body"])
    parameters = document["parameters"]
    return {
        "request": "the benchmark sentence (1 x 16 tokens) against a paraphrase" if example.is_text else "the example's request (batch 1)",
        "method": parameters["method"],
        "exact": parameters["exact"],
        "samples": parameters["samples"],
        "players": parameters["players"],
        "model_evaluations": parameters["model_evaluations"],
        "residual": parameters["residual"],
        "threads": threads,
        "latency": summarize_ms(samples),
    }
