"""The handler's quick request check (handler/messages.py) against the schema it stands in for
(handler/protocol.py's pydantic models): whatever the quick check accepts, the models accept with
the same values; whatever it refuses gets the models' own verdict and message."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimserve.handler import messages, protocol
from slimserve.handler.errors import BadRequest, Unprocessable
from slimserve.handler.manifest import Datatype

# Any code point, lone surrogates included: JSON's "\\ud800" escapes decode to them, and the
# schema refuses such a str where it validates one (names, ids, keys).
ANY_CHARACTER = st.characters(exclude_categories=())
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=4),
    st.text(ANY_CHARACTER, max_size=2),
)
JSON = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6
)


def _maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly what the schema wants, sometimes anything JSON can be, sometimes absent."""
    return st.one_of(valid, valid, valid, JSON, st.just(_ABSENT))


_ABSENT = object()
NAMES = st.one_of(
    st.text(min_size=1, max_size=8), st.text(ANY_CHARACTER, min_size=1, max_size=3), st.text(min_size=250, max_size=260), st.just("")
)
SHAPES = st.lists(st.one_of(st.integers(-2, 70), st.integers(-2, 3), st.booleans(), st.floats(0, 3), st.text(max_size=2)), max_size=34)
DATATYPES = st.one_of(st.sampled_from(sorted(messages.DATATYPES)), st.sampled_from(["FLOAT", "fp32", ""]))
PARAMETERS = st.one_of(st.none(), st.dictionaries(st.one_of(st.text(max_size=4), st.text(ANY_CHARACTER, max_size=2)), JSON, max_size=3))


def _object(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    return st.fixed_dictionaries({key: _maybe(value) for key, value in fields.items()}).map(
        lambda drawn: {key: value for key, value in drawn.items() if value is not _ABSENT}
    )


INPUT = _object({"name": NAMES, "shape": SHAPES, "datatype": DATATYPES, "parameters": PARAMETERS, "data": st.one_of(st.none(), st.lists(JSON, max_size=3)), "extra": JSON})
OUTPUT = _object({"name": NAMES, "parameters": PARAMETERS})
REQUEST = _object(
    {
        "id": st.one_of(st.none(), st.text(max_size=4), st.text(min_size=255, max_size=258)),
        "model_name": st.one_of(st.none(), st.text(max_size=4), st.text(ANY_CHARACTER, max_size=2)),
        "model_version": st.one_of(st.none(), st.text(max_size=4)),
        "parameters": PARAMETERS,
        "inputs": st.lists(INPUT, max_size=3) | st.lists(INPUT, min_size=64, max_size=65),
        "outputs": st.one_of(st.none(), st.lists(OUTPUT, max_size=3)),
        "signature_name": JSON,
    }
)


def _quick(raw: dict[str, Any], check) -> Any:
    try:
        return check(raw)
    except messages._Refused:
        return None


def _same_input(quick: messages.RequestInput, model: protocol.RequestInput) -> bool:
    return (quick.name, quick.shape, quick.datatype, quick.parameters, quick.data) == (
        model.name, model.shape, model.datatype, model.parameters, model.data,
    )


@settings(max_examples=400, deadline=None)
@given(REQUEST)
def test_quick_inference_check_accepts_only_what_the_schema_accepts(raw: dict[str, Any]) -> None:
    quick = _quick(raw, messages._quick_inference)
    if quick is None:
        return
    model = protocol.InferenceRequest.model_validate(raw)  # raises if the quick check was wrong
    assert (quick.id, quick.model_name, quick.model_version, quick.parameters) == (
        model.id, model.model_name, model.model_version, model.parameters,
    )
    assert len(quick.inputs) == len(model.inputs) and all(map(_same_input, quick.inputs, model.inputs))
    assert (quick.outputs is None) == (model.outputs is None)
    for mine, theirs in zip(quick.outputs or [], model.outputs or []):
        assert (mine.name, mine.parameters) == (theirs.name, theirs.parameters)


@settings(max_examples=200, deadline=None)
@given(_object({"instances": st.one_of(st.lists(JSON, max_size=3), JSON), "parameters": PARAMETERS, "rows": JSON}))
def test_quick_predict_check_accepts_only_what_the_schema_accepts(raw: dict[str, Any]) -> None:
    quick = _quick(raw, lambda value: messages.PredictRequest(
        instances=messages._list(value.get("instances"), low=1), parameters=messages._parameters(value.get("parameters"))
    ))
    if quick is not None:
        model = protocol.PredictRequest.model_validate(raw)
        assert (quick.instances, quick.parameters) == (model.instances, model.parameters)


def test_the_quick_check_knows_every_datatype() -> None:
    from typing import get_args

    assert messages.DATATYPES == set(get_args(Datatype))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "invalid inference request at 'inputs': Field required"),
        ({"inputs": [{"name": "x", "shape": [1.0], "datatype": "FP32", "data": [1]}]},
         "invalid inference request at 'inputs.0.shape.0': Input should be a valid integer"),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}], "id": 7},
         "invalid inference request at 'id': Input should be a valid string"),
    ],
)
def test_refusals_carry_the_schemas_message(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        messages.parse_inference_request(raw)
    assert caught.value.message.startswith(message)


def test_predict_limits_keep_their_message() -> None:
    with pytest.raises(BadRequest, match="instances are nested deeper than 32 levels"):
        messages.single_input_request("x", "FP32", [1] * 33, [], None)
    request = messages.single_input_request("x", "FP32", [1, 2], [[1, 2]], {"top_k": 2})
    assert request.inputs[0].shape == [1, 2] and request.parameters == {"top_k": 2}


@pytest.mark.parametrize(
    "field",
    ["id", "model_name", "model_version", "input name", "output name", "parameter key"],
)
def test_a_string_that_is_not_unicode_is_left_to_the_schema(field: str) -> None:
    """JSON's lone "\\ud800" escape decodes to a str pydantic refuses: the quick check must not
    vouch for it (random documents seldom reach this: every other field must be valid)."""
    lone = "\ud800"
    raw: dict[str, Any] = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    if field == "input name":
        raw["inputs"][0]["name"] = lone
    elif field == "output name":
        raw["outputs"] = [{"name": lone}]
    elif field == "parameter key":
        raw["parameters"] = {lone: 1}
    else:
        raw[field] = lone
    assert _quick(raw, messages._quick_inference) is None
    # ...so the handler's answer is the schema's (pydantic refuses names and ids, keeps the rest).
    try:
        protocol.InferenceRequest.model_validate(raw)
    except pydantic.ValidationError as exc:
        with pytest.raises(Unprocessable) as caught:
            messages.parse_inference_request(raw)
        assert caught.value.message == messages.format_validation_error(exc)
    else:
        assert messages.parse_inference_request(raw) is not None
