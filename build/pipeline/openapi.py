"""The API's declaration in FastAPI, used at build time to render its OpenAPI document.

The runtime app (handler/app.py) is a small ASGI router chosen for cold start; this module
declares the same routes with their request/response models so FastAPI renders the contract.
``openapi.json`` is written beside each built model (shipped in lambda.zip, served at
/openapi.json and /docs) and committed at the repo root for the digits example; tests check the
router's routes equal the document's and fuzz the router against it with schemathesis.

    python -m slimserve.build.pipeline.openapi dist/digits > openapi.json      (scripts/openapi does this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from slimserve.handler import __version__
from slimserve.handler.model import LoadedModel
from slimserve.handler.protocol import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    LiveResponse,
    ModelMetadata,
    ModelReadyResponse,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    ServerMetadata,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed request: JSON, tensor shape, datatype or values",
        404: "Unknown model, version or route",
        405: "Method not allowed on this route",
        413: "Body, batch, tensor or text over the configured limit",
        422: "Request does not follow the Open Inference Protocol schema",
        500: "The model failed on a valid request (the request id is in the body)",
    }.items()
}

_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Binary tensor extension: a JSON header of Inference-Header-Content-Length "
                "bytes, then the raw little-endian tensors named by parameters.binary_data_size.",
            },
        },
    }
}
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
    }
}


_EXPLAIN_DOC = (
    "The same request as infer, for one instance (batch size 1). Request parameters: `method` (one of the model "
    "metadata's `parameters.explain.methods`, the first by default: `kernel-shap`, `shapley-sampling`, "
    "`leave-one-out`), `target` (classification: class index or label, default the predicted class; raw: element "
    "of the first output; embedding: the text whose cosine similarity to the input is explained, required), "
    "`output` (classification: `logits`, the default, or `score`), `samples` (coalitions, up to "
    "`parameters.explain.max_samples`) and `seed`. The response holds the model's outputs plus `attributions` "
    "(FP32, the input's shape; for text one value per token, with the tokens as the BYTES output `tokens`) and "
    "`base_value` (FP32 [1]); `parameters` gives the explained `output_value`, the `residual` "
    "|base_value + sum(attributions) - output_value| and the model evaluations spent. A request whose estimated "
    "cost exceeds the invocation's remaining time is a 400 naming the limit. See docs/explanations.md."
)


def declare(model: LoadedModel) -> Any:
    """A FastAPI app whose routes mirror handler/app.py (documentation only: never deployed)."""
    from fastapi import FastAPI
    from fastapi.openapi.utils import get_openapi

    manifest = model.manifest
    labels = f" Labels: {', '.join(manifest.labels)}." if manifest.labels else ""
    app = FastAPI(
        title=f"slimserve: {manifest.name}",
        version=__version__,
        description=(
            f"Open Inference Protocol (KServe v2) endpoint for the `{manifest.task}` model `{manifest.name}` "
            f"version `{manifest.version}`.{labels} Errors are `{{\"error\": \"...\"}}` with the request id in "
            "the `x-request-id` header. Classification models take the request parameter `top_k` and add the "
            "outputs `label` (BYTES [batch, k]) and `score` (FP32 [batch, k], the class probabilities: softmax of "
            "logits, or the model's own probabilities). `/predict` returns every output of the model. Every "
            "response carries `x-request-id`."
        ),
        responses=_ERRORS,
        docs_url=None,
        redoc_url=None,
    )

    def route(method: str, path: str, **docs: Any) -> None:
        def endpoint(**_: Any) -> None:  # documentation only
            raise NotImplementedError

        app.add_api_route(path, endpoint, methods=[method], **docs)

    route("GET", "/v2", response_model=ServerMetadata, tags=["server"], summary="Server metadata")
    route("GET", "/v2/health/live", response_model=LiveResponse, tags=["server"], summary="Liveness")
    route("GET", "/v2/health/ready", response_model=ReadyResponse, tags=["server"], summary="Readiness")
    for prefix in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"):
        route("GET", prefix, response_model=ModelMetadata, tags=["model"], summary="Model metadata")
        route("GET", f"{prefix}/ready", response_model=ModelReadyResponse, tags=["model"], summary="Model readiness")
        route(
            "POST", f"{prefix}/infer", response_model=InferenceResponse, tags=["inference"],
            summary="Inference (JSON or binary tensors)", openapi_extra=_INFER_BODY,
        )
        route(
            "POST", f"{prefix}/explain", response_model=InferenceResponse, tags=["inference"],
            summary="Explanation: the outputs plus attributions of one of them", description=_EXPLAIN_DOC,
            openapi_extra=_INFER_BODY,
        )
    route(
        "POST", "/predict", response_model=PredictResponse, response_model_exclude_none=True, tags=["inference"],
        summary="Plain prediction route (same model, same checks as V2 infer)", openapi_extra=_PREDICT_BODY,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for message in (InferenceRequest, PredictRequest):
                schema_of = message.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(schema_of.pop("$defs", {}))
                components[message.__name__] = schema_of
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def render_for(model: LoadedModel) -> str:
    return json.dumps(declare(model).openapi(), indent=2, sort_keys=True) + "\n"


def render(model_dir: Path) -> str:
    from slimserve.handler.model import load_model

    return render_for(load_model(model_dir, intra_op_threads=1))


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/digits")))
