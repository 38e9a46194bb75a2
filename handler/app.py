"""The FastAPI app: Open Inference Protocol v2 over one loaded model.

Errors are mapped to HTTP in exactly one place (``_install_error_handlers`` plus the ASGI
guard for anything that escapes): every error body is ``{"error": "..."}``, every response
carries ``x-request-id`` (API Gateway's request id when there is one).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handler import __version__
from handler.codec import DecodedRequest, decode_inference_request, decode_request, encode_response, parse_json_object
from handler.errors import BadRequest, NotFound, PayloadTooLarge, SlimserveError, Unprocessable
from handler.manifest import TensorSpec
from handler.model import LoadedModel
from handler.protocol import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    LiveResponse,
    MetadataTensor,
    ModelMetadata,
    ModelReadyResponse,
    Prediction,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    RequestInput,
    ServerMetadata,
)
from handler.tasks import TaskAdapter, adapter_for

logger = logging.getLogger("slimserve")

SERVER_NAME = "slimserve"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "inference-header-content-length"
REQUEST_ID_HEADER = "x-request-id"

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed request: JSON, tensor shape, datatype or values",
        404: "Unknown model or version",
        413: "Body, batch, tensor or text over the configured limit",
        422: "Request does not follow the Open Inference Protocol schema",
        500: "The model failed on a valid request (the request id is in the body)",
    }.items()
}


def request_id_of(scope: Scope) -> str:
    """API Gateway's request id when running under Mangum, else the client's, else a new one."""
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict) and isinstance(context.get("requestId"), str):
            return context["requestId"]
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            return value.decode("latin-1")[:128]
    return str(uuid.uuid4())


class GuardMiddleware:
    """Pure ASGI (cheap, no per-request task): tags every response with the request id, refuses
    bodies over the limit before they are read, and turns any escaped exception into a JSON 500
    so neither the process nor the client sees a stack trace."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_error(send_with_id, PayloadTooLarge(_too_large(declared, self.max_body_bytes)))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise PayloadTooLarge(_too_large(received, self.max_body_bytes))
            return message

        try:
            await self.app(scope, counting_receive, send_with_id)
        except SlimserveError as exc:  # raised from receive(), outside FastAPI's handlers
            if not started:
                await _send_error(send_with_id, exc)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if not started:
                await _send_json(send_with_id, 500, {"error": f"internal error; request id {request_id}"})


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size} bytes exceeds the limit of {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, exc: SlimserveError) -> None:
    await _send_json(send, exc.status_code, {"error": exc.message})


async def _send_json(send: Send, status: int, document: dict[str, Any]) -> None:
    body = JSONResponse(document).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _install_error_handlers(app: FastAPI) -> None:
    def request_id(request: Request) -> str:
        return request.scope.get("state", {}).get("request_id", "")

    @app.exception_handler(SlimserveError)
    async def slimserve_error(request: Request, exc: SlimserveError) -> JSONResponse:
        message = exc.message
        if exc.status_code >= 500:
            logger.error("inference failed: %s", message, exc_info=exc, extra={"request_id": request_id(request)})
            message = f"{message}; request id {request_id(request)}"
        return JSONResponse({"error": message}, status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            detail = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"invalid request at '{where}': {first.get('msg')}"}, status_code=422)


def _nested_shape(instances: list[Any]) -> list[int]:
    shape = [len(instances)]
    element: Any = instances[0]
    while isinstance(element, list) and len(shape) < 32:
        shape.append(len(element))
        element = element[0] if element else None
    return shape


def _as_inference_request(plain: PredictRequest, specs: list[TensorSpec]) -> InferenceRequest:
    if len(specs) != 1:
        raise BadRequest(
            f"/predict serves models with one input; this one takes {[spec.name for spec in specs]}: "
            "use POST /v2/models/{name}/infer"
        )
    spec = specs[0]
    try:
        item = RequestInput(
            name=spec.name, shape=_nested_shape(plain.instances), datatype=spec.datatype, data=plain.instances
        )
    except ValidationError:
        raise BadRequest("instances are nested deeper than 32 levels") from None
    return InferenceRequest(inputs=[item], parameters=plain.parameters)


def _predictions(produced: dict[str, Any], task: str, output_names: list[str]) -> list[Prediction]:
    if task == "classification":
        labels, scores = produced["label"], produced["score"]
        return [
            Prediction(label=str(row_labels[0]), score=float(row_scores[0]), labels=[str(x) for x in row_labels],
                       scores=[float(x) for x in row_scores])
            for row_labels, row_scores in zip(labels, scores)
        ]
    first = produced[output_names[0]]
    return [Prediction(values=row.tolist()) for row in first]


def create_app(model: LoadedModel, *, adapter: TaskAdapter | None = None) -> FastAPI:
    manifest = model.manifest
    task = adapter or adapter_for(model)
    limits = manifest.runtime.limits
    app = FastAPI(
        title=f"slimserve: {manifest.name}",
        version=__version__,
        description=(
            f"Open Inference Protocol (KServe v2) endpoint for the `{manifest.task}` model "
            f"`{manifest.name}` version `{manifest.version}`. Errors are `{{\"error\": \"...\"}}`."
        ),
        responses=_ERROR_RESPONSES,
    )
    _install_error_handlers(app)

    def check_model(model_name: str, model_version: str | None = None) -> None:
        if model_name != manifest.name:
            raise NotFound(f"model '{model_name}' not found; this endpoint serves '{manifest.name}'")
        if model_version is not None and model_version != manifest.version:
            raise NotFound(
                f"version '{model_version}' of model '{model_name}' not found; available: ['{manifest.version}']"
            )

    metadata = ModelMetadata(
        name=manifest.name,
        versions=[manifest.version],
        platform=manifest.platform,
        inputs=[MetadataTensor(**spec.model_dump(include={"name", "datatype", "shape"})) for spec in manifest.inputs],
        outputs=[MetadataTensor(**spec.model_dump(include={"name", "datatype", "shape"})) for spec in manifest.outputs],
        parameters={"task": manifest.task, **({"labels": manifest.labels} if manifest.labels else {})},
    )
    output_names = [spec.name for spec in manifest.outputs]

    @app.get("/v2", response_model=ServerMetadata, tags=["server"])
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)

    @app.get("/v2/health/live", response_model=LiveResponse, tags=["server"])
    async def live() -> LiveResponse:
        return LiveResponse(live=True)

    @app.get("/v2/health/ready", response_model=ReadyResponse, tags=["server"])
    async def ready() -> ReadyResponse:
        return ReadyResponse(ready=True)

    @app.get("/v2/models/{model_name}", response_model=ModelMetadata, tags=["model"])
    async def model_metadata(model_name: str) -> ModelMetadata:
        check_model(model_name)
        return metadata

    @app.get("/v2/models/{model_name}/versions/{model_version}", response_model=ModelMetadata, tags=["model"])
    async def model_version_metadata(model_name: str, model_version: str) -> ModelMetadata:
        check_model(model_name, model_version)
        return metadata

    @app.get("/v2/models/{model_name}/ready", response_model=ModelReadyResponse, tags=["model"])
    async def model_ready(model_name: str) -> ModelReadyResponse:
        check_model(model_name)
        return ModelReadyResponse(name=model_name, ready=True)

    @app.get(
        "/v2/models/{model_name}/versions/{model_version}/ready",
        response_model=ModelReadyResponse,
        tags=["model"],
    )
    async def model_version_ready(model_name: str, model_version: str) -> ModelReadyResponse:
        check_model(model_name, model_version)
        return ModelReadyResponse(name=model_name, ready=True)

    def produce(decoded: DecodedRequest) -> dict[str, Any]:
        return task.infer(decoded.tensors, decoded.parameters)

    async def run_inference(request: Request) -> Response:
        body = await request.body()
        decoded = decode_request(
            body,
            header_length=request.headers.get(HEADER_LENGTH),
            specs=manifest.inputs,
            limits=limits,
        )
        produced = produce(decoded)
        if decoded.requested_outputs is None:
            selected = {name: produced[name] for name in output_names if name in produced}
            binary = {name: decoded.binary_by_default for name in selected}
        else:
            unknown = [name for name in decoded.requested_outputs if name not in produced]
            if unknown:
                raise NotFound(f"unknown output(s) {unknown}; this model produces {output_names}")
            selected = {name: produced[name] for name in decoded.requested_outputs}
            binary = decoded.requested_outputs
        encoded = encode_response(
            model_name=manifest.name,
            model_version=manifest.version,
            request_id=decoded.request.id,
            outputs=selected,
            binary=binary,
        )
        if encoded.header_length is None:
            return Response(encoded.body, media_type="application/json")
        return Response(
            encoded.body,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(encoded.header_length)},
        )

    infer_docs: dict[str, Any] = {
        "response_model": InferenceResponse,
        "tags": ["inference"],
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"},
                        "description": "Binary tensor extension: JSON header of "
                        "Inference-Header-Content-Length bytes, then raw tensors.",
                    },
                },
            }
        },
    }

    @app.post("/v2/models/{model_name}/infer", **infer_docs)
    async def infer(model_name: str, request: Request) -> Response:
        check_model(model_name)
        return await run_inference(request)

    @app.post("/v2/models/{model_name}/versions/{model_version}/infer", **infer_docs)
    async def infer_version(model_name: str, model_version: str, request: Request) -> Response:
        check_model(model_name, model_version)
        return await run_inference(request)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        tags=["inference"],
        summary="Plain prediction route (same model, same checks as V2 infer)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
            }
        },
    )
    async def predict(request: Request) -> PredictResponse:
        raw = parse_json_object(await request.body())
        try:
            plain = PredictRequest.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise Unprocessable(f"invalid predict request at '{where}': {first['msg']}") from None
        decoded = decode_inference_request(
            _as_inference_request(plain, manifest.inputs), specs=manifest.inputs, limits=limits
        )
        produced = produce(decoded)
        return PredictResponse(
            predictions=_predictions(produced, manifest.task, output_names),
            model_name=manifest.name,
            model_version=manifest.version,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for message in (InferenceRequest, PredictRequest):
                schema_of = message.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(schema_of.pop("$defs", {}))
                components[message.__name__] = schema_of
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(GuardMiddleware, max_body_bytes=limits.max_body_bytes)
    return app
