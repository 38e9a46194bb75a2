"""Section 4, warm request overhead, in process:

- the handler path (an API Gateway HTTP API event -> Lambda result) against a bare
  ``session.run`` on the same input, on the same session, interleaved. Two handler paths: the
  Mangum-wrapped app alone, and the full handler as ``slimserve.handler.main`` composes it (Powertools
  log line + EMF metrics around it, written to /dev/null here instead of CloudWatch's pipe).
- JSON versus binary tensors for a 1 MiB FP32 input, through the whole round trip: client
  encode, what API Gateway does to the body (HTTP API base64-encodes a binary body and decodes a
  base64 result), Mangum + the app, client decode. The digits model's limits refuse 1 MiB, so
  this uses an FP32 Identity model made here, with a manifest whose limits allow it.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.bench.common import (
    SENTENCE,
    Example,
    LambdaContextStub,
    http_api_event,
    infer_body,
)
from slimserve.build.bench.stats import interleaved, ratio, summarize_ms

_DEVNULL = None


def _devnull() -> Any:
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - kept open: loggers hold on to it
    return _DEVNULL


def _handler_feed(example: Example, app: Any, body: bytes) -> dict[str, np.ndarray]:
    """Exactly what the handler hands to session.run for this request body."""
    from slimserve.handler.codec import decode_request

    service = app.service
    decoded = decode_request(body, header_length=None, specs=service.manifest.inputs, limits=service.limits)
    if example.is_text:
        texts = [text.decode() if isinstance(text, bytes) else str(text) for text in decoded.tensors[service.manifest.inputs[0].name].tolist()]
        return service.task.feeds(texts)
    return decoded.tensors


def _small_body(example: Example) -> bytes:
    """Issue 14's small request: for a text model one sentence (SENTENCE, what the result's
    ``request`` names; the example's request.json holds three), else the suite's batch-1 body."""
    if not example.is_text:
        return infer_body(example)
    (spec,) = example.manifest.inputs
    return json.dumps({"id": "bench", "inputs": [{"name": spec.name, "shape": [1], "datatype": spec.datatype, "data": [SENTENCE]}]}).encode()


def _response_encoder(app: Any, body: bytes) -> Callable[[], Any] | None:
    """Encoding this request's response as JSON (slimserve.handler.codec.encode_response), alone; None
    when the codec's interface is not the one this was written against."""
    try:
        from slimserve.handler.codec import decode_request, encode_response

        service = app.service
        decoded = decode_request(body, header_length=None, specs=service.manifest.inputs, limits=service.limits)
        produced = service.task.infer(decoded.tensors, decoded.parameters)
        outputs = {name: produced[name] for name in service.output_names if name in produced}
        binary = {name: False for name in outputs}

        def encode() -> Any:
            return encode_response(
                model_name=service.manifest.name, model_version=service.manifest.version,
                request_id=decoded.request.id, outputs=outputs, binary=binary,
            )

        encode()
        return encode
    except Exception:  # noqa: BLE001 - a breakdown detail, not worth failing the section
        return None


class _TimedSession:
    """Delegates to an onnxruntime session and records how long each ``run`` took, so the
    handler path's own cost can be taken per request (total minus the model's share)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.durations: list[float] = []

    def run(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            self.durations.append(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def measure_handler_overhead(
    example: Example,
    *,
    runs: int = 300,
    warmup: int = 20,
    threads: int = 1,
    status: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    """Per request: the handler path's time minus the time its own session.run took (median of
    those paired differences), plus the difference of medians against a bare session.run on the
    same input, and a breakdown (service.infer without Mangum; tokenization for text models)."""
    from slimserve.handler.app import create_app
    from slimserve.handler.gateway import make_lambda_handler
    from slimserve.handler.model import load_model
    from slimserve.handler.observability import instrument, make_logger, make_metrics

    status(f"{example.name}: warm request overhead")
    loaded = load_model(example.dist, intra_op_threads=threads)
    session = loaded.session
    timed = _TimedSession(session)
    model = loaded._replace(session=timed)
    app = create_app(model)
    mangum = make_lambda_handler(app)
    with redirect_stdout(_devnull()):
        logger = make_logger("INFO")
        full = instrument(mangum, logger=logger, metrics=make_metrics(model.name))
    body = _small_body(example)
    event = http_api_event("POST", example.infer_path, body)
    context = LambdaContextStub()
    feed = _handler_feed(example, app, body)
    output_names = list(model.output_names)
    for name, call in (("mangum", mangum), ("handler", full)):
        with redirect_stdout(_devnull()):
            result = call(event, context)
        if result.get("statusCode") != 200:
            raise RuntimeError(f"{example.name}: the {name} path answered {result.get('statusCode')}: {result.get('body')}")

    inner: dict[str, list[float]] = {"handler_main": [], "mangum_app": [], "service_infer": []}

    def paired(name: str, call: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            before = len(timed.durations)
            value = call()
            inner[name].append(sum(timed.durations[before:]))
            return value

        return run

    contenders: dict[str, Callable[[], Any]] = {
        "bare_session_run": lambda: session.run(output_names, feed),
        "service_infer": paired("service_infer", lambda: app.service.infer(model.name, None, body, None)),
        "mangum_app": paired("mangum_app", lambda: mangum(event, context)),
        "handler_main": paired("handler_main", lambda: full(event, context)),
    }
    if example.is_text:
        texts = [SENTENCE]
        contenders["tokenize"] = lambda: app.service.task.feeds(texts)
    encode = _response_encoder(app, body)
    if encode is not None:
        contenders["encode_json_response"] = encode
    with redirect_stdout(_devnull()):
        samples = interleaved(contenders, runs=runs, warmup=warmup, rounds=10)
    summary = {name: summarize_ms(values) for name, values in samples.items()}
    per_request: dict[str, Any] = {}
    for name, model_times in inner.items():
        timed_runs = model_times[-runs:]  # the warm-up calls come first
        differences = [total - model_time for total, model_time in zip(samples[name], timed_runs)]
        per_request[name] = summarize_ms(differences)
    bare_ms = summary["bare_session_run"]["median_ms"]
    if example.is_text:
        request = f"1 text of {len(feed['input_ids'][0])} tokens ({SENTENCE!r})"
    else:
        source = "the example's request.json" if (example.folder / "request.json").is_file() else "synthetic input"
        request = f"{source}, batch 1, {len(body)} bytes of JSON"
    handler_ms = per_request["handler_main"]["median_ms"]
    mangum_ms = per_request["mangum_app"]["median_ms"]
    service_ms = per_request["service_infer"]["median_ms"]
    breakdown = {
        "powertools_log_and_metrics_ms": handler_ms - mangum_ms,
        "mangum_and_asgi_ms": mangum_ms - service_ms,
        "service_codec_and_task_ms": service_ms,
    }
    if example.is_text:
        breakdown["of_which_tokenize_ms"] = summary["tokenize"]["median_ms"]
    if "encode_json_response" in summary:
        breakdown["of_which_json_encode_ms"] = summary["encode_json_response"]["median_ms"]
    return {
        "request": request,
        "threads": threads,
        "method": (
            f"in process, {runs} interleaved runs each after {warmup} warm-up; overhead = median over requests of "
            "(path time - the time its own session.run took)"
        ),
        "paths": summary,
        "overhead_per_request": per_request,
        "overhead_handler_main_ms": handler_ms,
        "overhead_mangum_app_ms": mangum_ms,
        "overhead_service_infer_ms": service_ms,
        "difference_of_medians_handler_main_ms": summary["handler_main"]["median_ms"] - bare_ms,
        "breakdown_ms": breakdown,
        "handler_vs_bare_x": ratio(summary["handler_main"]["median_ms"], bare_ms),
    }


def _identity_model(folder: Path, elements: int) -> Path:
    """FP32 Identity, input x [-1, -1] -> y, with limits that admit ``elements`` floats as JSON."""
    import onnx
    from onnx import TensorProto, helper

    from slimserve.build.pipeline.bundle import sha256_file
    from slimserve.handler.manifest import MANIFEST_SCHEMA, Manifest

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    manifest = Manifest(
        schema=MANIFEST_SCHEMA,
        name="identity",
        task="raw",
        model={"file": "model.onnx", "sha256": sha256_file(path), "bytes": path.stat().st_size},
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, -1]}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1, -1]}],
        runtime={"limits": {"max_body_bytes": 64 * 1024 * 1024, "max_elements": 4 * elements, "max_batch": 64}},
    )
    (folder / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    return folder


def measure_json_vs_binary(
    *,
    payload_bytes: int = 1024 * 1024,
    runs: int = 15,
    warmup: int = 2,
    status: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    from slimserve.handler.app import create_app
    from slimserve.handler.gateway import make_lambda_handler
    from slimserve.handler.model import load_model

    status("JSON vs binary tensors, 1 MiB FP32")
    elements = payload_bytes // 4
    data = np.random.default_rng(0).random((1, elements)).astype(np.float32)
    path = "/v2/models/identity/infer"
    context = LambdaContextStub()
    with tempfile.TemporaryDirectory(prefix="slimserve-bench-") as scratch:
        folder = _identity_model(Path(scratch) / "identity", elements)
        handler = make_lambda_handler(create_app(load_model(folder, intra_op_threads=1)))
        sizes: dict[str, int] = {}

        def json_round_trip() -> np.ndarray:
            body = json.dumps(
                {"inputs": [{"name": "x", "shape": list(data.shape), "datatype": "FP32", "data": data.ravel().tolist()}]}
            ).encode()
            event = http_api_event("POST", path, body)
            result = handler(event, context)
            raw = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"].encode()
            sizes.update(json_request_bytes=len(body), json_event_bytes=len(json.dumps(event)), json_response_bytes=len(raw))
            document = json.loads(raw)
            return np.asarray(document["outputs"][0]["data"], dtype=np.float32).reshape(document["outputs"][0]["shape"])

        def binary_round_trip() -> np.ndarray:
            raw_input = data.astype("<f4", copy=False).tobytes()
            header = json.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": list(data.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(raw_input)}}
                    ],
                    "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
                }
            ).encode()
            body = header + raw_input
            event = http_api_event(
                "POST",
                path,
                body,
                headers={"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))},
            )
            result = handler(event, context)
            raw = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"].encode()
            sizes.update(binary_request_bytes=len(body), binary_event_bytes=len(json.dumps(event)), binary_response_bytes=len(raw))
            headers = {key.lower(): value for key, value in (result.get("headers") or {}).items()}
            length = int(headers["inference-header-content-length"])
            document = json.loads(raw[:length])
            return np.frombuffer(raw[length:], dtype="<f4").reshape(document["outputs"][0]["shape"])

        if not np.array_equal(json_round_trip(), data) or not np.array_equal(binary_round_trip(), data):
            raise RuntimeError("JSON vs binary: the identity model did not return its input")
        samples = interleaved({"json": json_round_trip, "binary": binary_round_trip}, runs=runs, warmup=warmup, rounds=runs)
    summary = {name: summarize_ms(values) for name, values in samples.items()}
    lambda_payload_limit = 6 * 1024 * 1024
    return {
        "payload": f"FP32 [1, {elements}] = {payload_bytes} bytes, random values",
        "model": "FP32 Identity (made by the suite; limits raised to admit the JSON body)",
        "method": (
            f"{runs} interleaved round trips each after {warmup} warm-up: client encode, API Gateway body "
            "handling (HTTP API: binary request base64-encoded, base64 result decoded), Mangum + app, client decode"
        ),
        "paths": summary,
        "binary_speedup_x": ratio(summary["json"]["median_ms"], summary["binary"]["median_ms"]),
        **sizes,
        "lambda_sync_payload_limit_bytes": lambda_payload_limit,
        "json_event_fits_lambda_payload": sizes.get("json_event_bytes", 0) <= lambda_payload_limit,
        "binary_event_fits_lambda_payload": sizes.get("binary_event_bytes", 0) <= lambda_payload_limit,
    }
