"""Open Inference Protocol (KServe v2) request and response shapes.

These pydantic models are the request schema and document the API (they feed the committed
openapi.json). The handler does not import them on the way a valid request takes:
handler/messages.py checks requests against the same rules and hands anything it cannot vouch
for to these models, for their verdict and the words of every 422. Tensor data stays
``list[Any]`` here: numeric conversion and shape checks are done with numpy in codec.py, which
is much faster than per-element pydantic validation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from slimserve.handler.manifest import Datatype

Parameters = dict[str, Any]
# A dimension is a JSON integer: "1", 1.0 and true are refused, not coerced.
Dimension = StrictInt


class _Message(BaseModel):
    # The protocol's JSON objects are extensible: known fields are validated, unknown ones
    # ignored (KServe's client sends "model_name" in every body, TF-style clients "signature_name").
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Message):
    name: str = Field(min_length=1, max_length=256)
    shape: list[Dimension] = Field(max_length=32)
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = Field(
        default=None,
        description="Tensor elements, flat or nested in row-major order. Omitted when the tensor "
        "travels in the binary section (parameters.binary_data_size).",
    )


class RequestOutput(_Message):
    name: str = Field(min_length=1, max_length=256)
    parameters: Parameters | None = None


class InferenceRequest(_Message):
    id: str | None = Field(default=None, max_length=256)
    # Optional echo of the path (KServe's client sends them); when given they must match it.
    model_name: str | None = None
    model_version: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=64)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=64)


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: Parameters | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class ErrorResponse(BaseModel):
    error: str


class PredictRequest(_Message):
    """The plain route: one example per entry of ``instances`` for a model with one input
    (numbers, nested lists of numbers, or strings for text models)."""

    instances: list[Any] = Field(min_length=1, examples=[[[0.0] * 64]])
    parameters: Parameters | None = None


class Prediction(BaseModel):
    label: str | None = Field(default=None, description="classification: the top label")
    score: float | None = Field(default=None, description="classification: its score")
    labels: list[str] | None = Field(default=None, description="classification: top-k labels")
    scores: list[float] | None = Field(default=None, description="classification: top-k scores")
    values: list[Any] | None = Field(default=None, description="other tasks: the first output's row")
    outputs: dict[str, Any] | None = Field(
        default=None, description="the row of every other output the model produces, by name"
    )


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_name: str
    model_version: str
