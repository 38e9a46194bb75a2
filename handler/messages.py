"""Request bodies as plain objects, parsed without pydantic on the path every valid request takes.

``handler/protocol.py``'s pydantic models are the schema: they document the API (openapi.json)
and word every 422. Importing pydantic costs more than the rest of the handler's own imports
(handler/manifest_file.py), so the handler first checks a decoded JSON object against the same
rules here: an object that passes is one the models accept, with the same values (unknown keys
ignored, as the models do). Anything else is handed to the models, imported then, for their
verdict and their exact message; if they accept what the quick check would not, their result is
used. tests/handler/test_messages.py holds the two to the same answers on generated documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from slimserve.handler.datatypes import V2_TO_NUMPY
from slimserve.handler.errors import BadRequest, Unprocessable, clip

if TYPE_CHECKING:
    from pydantic import ValidationError

# The models' limits (protocol.py): name lengths, dimensions, inputs and outputs per request.
MAX_NAME_CHARS = 256
MAX_ID_CHARS = 256
MAX_DIMENSIONS = 32
MAX_TENSORS = 64
DATATYPES = frozenset(V2_TO_NUMPY)

Parameters = dict[str, Any]

# Records are NamedTuples, here and across the handler: defining a frozen dataclass runs code
# generation (~1.5 ms each on a 2-core machine), at import, i.e. inside the cold start; the
# handler's 13 of them cost ~20 ms, a NamedTuple ~0.1 ms.


class RequestInput(NamedTuple):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class RequestOutput(NamedTuple):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(NamedTuple):
    inputs: list[RequestInput]
    id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    parameters: Parameters | None = None
    outputs: list[RequestOutput] | None = None


class PredictRequest(NamedTuple):
    instances: list[Any]
    parameters: Parameters | None = None


class _Refused(Exception):
    """The quick check cannot vouch for this object: the models decide."""


def _unicode(value: str) -> bool:
    """pydantic refuses a str that is not Unicode (JSON's lone ``\\ud800`` escapes): so must we."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: Any, *, low: int = 0, high: int) -> str:
    if type(value) is not str or not low <= len(value) <= high or not _unicode(value):
        raise _Refused
    return value


def _optional_text(value: Any, high: int | None = None) -> str | None:
    if value is None:
        return None
    if type(value) is not str or (high is not None and len(value) > high) or not _unicode(value):
        raise _Refused
    return value


def _parameters(value: Any) -> Parameters | None:
    if value is None:
        return None
    if type(value) is not dict or not all(type(key) is str and _unicode(key) for key in value):
        raise _Refused
    return value


def _list(value: Any, *, low: int = 0, high: int | None = None) -> list[Any]:
    if type(value) is not list or len(value) < low or (high is not None and len(value) > high):
        raise _Refused
    return value


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Refused
    return value


def _input(raw: Any) -> RequestInput:
    item = _object(raw)
    shape = _list(item.get("shape"), high=MAX_DIMENSIONS)
    # A dimension is a JSON integer: "1", 1.0 and true are refused (StrictInt).
    if not all(type(dimension) is int for dimension in shape):
        raise _Refused
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:
        raise _Refused
    data = item.get("data")
    return RequestInput(
        name=_text(item.get("name"), low=1, high=MAX_NAME_CHARS),
        shape=shape,
        datatype=datatype,
        parameters=_parameters(item.get("parameters")),
        data=None if data is None else _list(data),
    )


def _output(raw: Any) -> RequestOutput:
    item = _object(raw)
    return RequestOutput(name=_text(item.get("name"), low=1, high=MAX_NAME_CHARS), parameters=_parameters(item.get("parameters")))


def _quick_inference(raw: dict[str, Any]) -> InferenceRequest:
    outputs = raw.get("outputs")
    return InferenceRequest(
        inputs=[_input(item) for item in _list(raw.get("inputs"), low=1, high=MAX_TENSORS)],
        id=_optional_text(raw.get("id"), MAX_ID_CHARS),
        model_name=_optional_text(raw.get("model_name")),
        model_version=_optional_text(raw.get("model_version")),
        parameters=_parameters(raw.get("parameters")),
        outputs=None if outputs is None else [_output(item) for item in _list(outputs, high=MAX_TENSORS)],
    )


def format_validation_error(exc: ValidationError, what: str = "inference request") -> str:
    """The first schema error, naming where it is; keys and values from the request are clipped."""
    first = exc.errors()[0]
    where = ".".join(clip(part) for part in first["loc"]) or "body"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid {what} at '{where}': {clip(first['msg'], 200)}{more}"


def parse_inference_request(raw: dict[str, Any]) -> InferenceRequest:
    """A decoded JSON object as an inference request, or a 422 in the schema's words."""
    try:
        return _quick_inference(raw)
    except _Refused:
        pass
    from pydantic import ValidationError

    from slimserve.handler import protocol

    try:
        model = protocol.InferenceRequest.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable(format_validation_error(exc)) from None
    return InferenceRequest(
        inputs=[RequestInput(item.name, item.shape, item.datatype, item.parameters, item.data) for item in model.inputs],
        id=model.id,
        model_name=model.model_name,
        model_version=model.model_version,
        parameters=model.parameters,
        outputs=None if model.outputs is None else [RequestOutput(out.name, out.parameters) for out in model.outputs],
    )


def parse_predict_request(raw: dict[str, Any]) -> PredictRequest:
    """A decoded JSON object as a /predict request, or a 422 in the schema's words."""
    try:
        return PredictRequest(instances=_list(raw.get("instances"), low=1), parameters=_parameters(raw.get("parameters")))
    except _Refused:
        pass
    from pydantic import ValidationError

    from slimserve.handler import protocol

    try:
        model = protocol.PredictRequest.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable(format_validation_error(exc, "predict request")) from None
    return PredictRequest(instances=model.instances, parameters=model.parameters)


def single_input_request(name: str, datatype: str, shape: list[int], data: list[Any], parameters: Parameters | None) -> InferenceRequest:
    """/predict's body as the inference request of a one-input model (what RequestInput's
    limits would refuse is refused with /predict's own message)."""
    if len(shape) > MAX_DIMENSIONS or not 1 <= len(name) <= MAX_NAME_CHARS:
        raise BadRequest("instances are nested deeper than 32 levels")
    return InferenceRequest(inputs=[RequestInput(name, shape, datatype, None, data)], parameters=parameters)
