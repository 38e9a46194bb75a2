"""The committed openapi.json is what the app serves; a change to the API must update it."""

from __future__ import annotations

import json
from pathlib import Path

from build.openapi import render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"


def test_committed_openapi_matches_the_app(digits_build: Path) -> None:
    assert render(digits_build) == COMMITTED.read_text(), "API changed: run scripts/openapi and commit openapi.json"


def test_openapi_documents_every_route_and_the_error_shape() -> None:
    document = json.loads(COMMITTED.read_text())
    paths = document["paths"]
    for route in (
        "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}", "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/versions/{model_version}/ready",
        "/v2/models/{model_name}/versions/{model_version}/infer", "/predict",
    ):
        assert route in paths, route
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/InferenceRequest"}
    assert "application/octet-stream" in infer["requestBody"]["content"]
    assert infer["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    schemas = document["components"]["schemas"]
    assert {"InferenceRequest", "RequestInput", "InferenceResponse", "ErrorResponse", "PredictRequest"} <= set(schemas)
