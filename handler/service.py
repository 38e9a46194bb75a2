"""The inference service: every endpoint's behaviour, independent of any web framework.

The ASGI app (handler/app.py, what Lambda runs) and the FastAPI declaration that documents the
API (build/pipeline/openapi.py) both call these methods, so there is one implementation of the protocol.
Every method either returns a JSON-able value / bytes or raises a SlimserveError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from slimserve.handler import __version__
from slimserve.handler.codec import (
    DecodedRequest,
    decode_inference_request,
    decode_request,
    encode_response,
    parse_json_object,
    require_finite_output,
)
from slimserve.handler.errors import BadRequest, NotFound, clip
from slimserve.handler.messages import (
    InferenceRequest,
    PredictRequest,
    parse_predict_request,
    single_input_request,
)
from slimserve.handler.model import LoadedModel
from slimserve.handler.tasks import TaskAdapter, adapter_for

if TYPE_CHECKING:
    from slimserve.handler.manifest import TensorSpec

SERVER_NAME = "slimserve"
EXTENSIONS = ["binary_tensor_data"]


class InferReply(NamedTuple):  # a NamedTuple: cheap to define at cold start (messages.py)
    body: bytes
    header_length: int | None  # binary tensors follow the JSON header when set


class InferenceService:
    def __init__(self, model: LoadedModel, adapter: TaskAdapter | None = None) -> None:
        self.model = model
        self.manifest = model.manifest
        self.task = adapter or adapter_for(model)
        self.limits = self.manifest.runtime.limits
        self.output_names = [spec.name for spec in self.manifest.outputs]
        tensors = lambda specs: [{"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)} for spec in specs]  # noqa: E731
        # The request limits, so a client can read them before it is refused by one.
        parameters: dict[str, Any] = {"task": self.manifest.task, "limits": dict(self.limits)}
        if self.manifest.labels:
            parameters["labels"] = self.manifest.labels
        if self.manifest.explain is not None:
            offered = self.manifest.explain.to_dict()
            parameters["explain"] = {key: value for key, value in offered.items() if key != "background" and value is not None}
        parameters["model"] = {"version": self.manifest.version, "sha256": self.manifest.model.sha256}  # what `live` serves
        self._explainer: Any = None  # built on the first explain request (handler/explain/)
        self._metadata = {
            "name": self.manifest.name,
            "versions": [self.manifest.version],
            "platform": self.manifest.platform,
            "inputs": tensors(self.manifest.inputs),
            "outputs": tensors(self.manifest.outputs),
            "parameters": parameters,
        }

    # ------------------------------------------------------------------ metadata and health

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def check_model(self, model_name: str, model_version: str | None = None) -> None:
        if model_name != self.manifest.name:
            raise NotFound(f"model '{clip(model_name)}' not found; this endpoint serves '{self.manifest.name}'")
        if model_version is not None and model_version != self.manifest.version:
            raise NotFound(
                f"version '{clip(model_version)}' of model '{model_name}' not found; available: ['{self.manifest.version}']"
            )

    def model_metadata(self, model_name: str, model_version: str | None = None) -> dict[str, Any]:
        self.check_model(model_name, model_version)
        return self._metadata

    def model_ready(self, model_name: str, model_version: str | None = None) -> dict[str, Any]:
        self.check_model(model_name, model_version)
        return {"name": model_name, "ready": True}

    # ------------------------------------------------------------------ inference

    def warm_up(self) -> None:
        """One inference on a minimal input (batch 1, free dimensions 1): primes the session.
        Nothing to do for an adapter that already ran one when it loaded (``primed``: the
        embedding task checks its model that way): a second costs cold start and adds nothing."""
        if getattr(self.task, "primed", False):
            return
        import numpy as np

        from slimserve.handler.datatypes import V2_TO_NUMPY

        tensors = {}
        for spec in self.manifest.inputs:
            shape = [1 if dim == -1 else dim for dim in spec.shape]
            if spec.datatype == "BYTES":
                tensors[spec.name] = np.full(shape, "warm up", dtype=object)
            else:
                tensors[spec.name] = np.zeros(shape, dtype=V2_TO_NUMPY[spec.datatype])
        self.task.infer(tensors, {})

    def _produce(self, decoded: DecodedRequest) -> dict[str, Any]:
        return self.task.infer(decoded.tensors, decoded.parameters)

    def infer(self, model_name: str, model_version: str | None, body: bytes, header_length: str | None) -> InferReply:
        self.check_model(model_name, model_version)
        decoded = decode_request(body, header_length=header_length, specs=self.manifest.inputs, limits=self.limits)
        _check_body_names_path(decoded.request.model_name, decoded.request.model_version, model_name, model_version or self.manifest.version)
        produced = self._produce(decoded)
        if decoded.requested_outputs is None:
            selected = {name: produced[name] for name in self.output_names if name in produced}
            binary = {name: decoded.binary_by_default for name in selected}
        else:
            unknown = [name for name in decoded.requested_outputs if name not in produced]
            if unknown:
                raise NotFound(f"unknown output(s) {[clip(name) for name in unknown[:8]]}; this model produces {self.output_names}")
            selected = {name: produced[name] for name in decoded.requested_outputs}
            binary = decoded.requested_outputs
        encoded = encode_response(
            model_name=self.manifest.name,
            model_version=self.manifest.version,
            request_id=decoded.request.id,
            outputs=selected,
            binary=binary,
        )
        return InferReply(encoded.body, encoded.header_length)

    def explain(
        self, model_name: str, model_version: str | None, body: bytes, header_length: str | None, context: Any = None
    ) -> InferReply:
        """The model's outputs plus attributions of one of them (docs/explanations.md).
        ``context``: the Lambda context, whose remaining time bounds the work."""
        self.check_model(model_name, model_version)
        if self.manifest.explain is None:
            raise NotFound(f"model '{self.manifest.name}' offers no explanations (explain.enabled = false, or a kind of model that gets none: its build log says which)")
        decoded = decode_request(body, header_length=header_length, specs=self.manifest.inputs, limits=self.limits)
        _check_body_names_path(decoded.request.model_name, decoded.request.model_version, model_name, model_version or self.manifest.version)
        produced = self._produce(decoded)
        if self._explainer is None:
            # Imported here, not at init: cold start never pays for explanations.
            from slimserve.handler.explain import Explainer

            self._explainer = Explainer(self.model, self.task)
        explanation = self._explainer.explain(decoded.tensors, decoded.parameters, produced, context)
        outputs = {**{name: produced[name] for name in self.output_names if name in produced}, **explanation.outputs}
        encoded = encode_response(
            model_name=self.manifest.name,
            model_version=self.manifest.version,
            request_id=decoded.request.id,
            outputs=outputs,
            binary={name: decoded.binary_by_default for name in outputs},
            parameters=explanation.parameters,
        )
        return InferReply(encoded.body, encoded.header_length)

    def predict(self, body: bytes) -> dict[str, Any]:
        plain = parse_predict_request(parse_json_object(body))
        request = _as_inference_request(plain, self.manifest.inputs)
        decoded = decode_inference_request(request, specs=self.manifest.inputs, limits=self.limits)
        produced = self._produce(decoded)
        for name, array in produced.items():
            require_finite_output(name, array)  # /predict answers JSON only
        return {
            "predictions": _predictions(produced, self.manifest.task, self.output_names),
            "model_name": self.manifest.name,
            "model_version": self.manifest.version,
        }


def _check_body_names_path(
    body_name: str | None, body_version: str | None, path_name: str, path_version: str
) -> None:
    """A body that names its model (KServe's client always does) must name the one in the path."""
    if body_name is not None and body_name != path_name:
        raise BadRequest(f"model_name '{clip(body_name)}' in the body does not match the path's '{path_name}'")
    if body_version is not None and body_version != path_version:
        raise BadRequest(
            f"model_version '{clip(body_version)}' in the body does not match the served version '{path_version}'"
        )


def _nested_shape(instances: list[Any]) -> list[int]:
    shape = [len(instances)]
    element: Any = instances[0]
    while isinstance(element, list) and len(shape) < 33:
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
    return single_input_request(spec.name, spec.datatype, _nested_shape(plain.instances), plain.instances, plain.parameters)


def _predictions(produced: dict[str, Any], task: str, output_names: list[str]) -> list[dict[str, Any]]:
    """One prediction per row: classification's ``label``/``score`` (top-k in ``labels``/``scores``),
    else ``values`` (the first output); ``outputs`` carries the row of every other output the
    model produces, so nothing the model returns is dropped."""
    added = ("label", "score") if task == "classification" else ()
    own = [name for name in output_names if name not in added and name in produced]
    first, others = (None, own) if task == "classification" else (own[0], own[1:])
    predictions = []
    for row in range(len(produced[own[0]])):
        prediction: dict[str, Any] = {}
        if task == "classification":
            row_labels, row_scores = produced["label"][row], produced["score"][row]
            prediction.update(
                label=str(row_labels[0]),
                score=float(row_scores[0]),
                labels=[str(x) for x in row_labels],
                scores=[float(x) for x in row_scores],
            )
        else:
            prediction["values"] = _plain(produced[first][row])
        if others:
            prediction["outputs"] = {name: _plain(produced[name][row]) for name in others}
        predictions.append(prediction)
    return predictions


def _plain(value: Any) -> Any:
    """A row of an output as JSON values (strings for BYTES)."""
    import numpy as np

    array = np.asarray(value)
    if array.dtype.kind in ("O", "U", "S"):
        return np.vectorize(lambda item: item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item), otypes=[object])(array).tolist()
    return array.tolist()
