"""The OpenAPI contract: rendered by FastAPI at build time, committed, shipped, served — and
exactly the routes the runtime app answers."""

from __future__ import annotations

import json
from pathlib import Path

from slimserve.build.pipeline.openapi import render

from repo import REPO_ROOT

COMMITTED = REPO_ROOT / "openapi.json"
SERVED_BY_APP_ONLY = {("GET", "/openapi.json"), ("GET", "/docs")}


def test_committed_openapi_matches_the_declaration(digits_build: Path) -> None:
    assert render(digits_build) == COMMITTED.read_text(), "API changed: run scripts/openapi and commit openapi.json"


def test_build_ships_the_same_document(digits_build: Path) -> None:
    assert (digits_build / "openapi.json").read_text() == COMMITTED.read_text()


def test_runtime_routes_equal_documented_routes(digits_app) -> None:
    document = json.loads(COMMITTED.read_text())
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert digits_app.route_table() - SERVED_BY_APP_ONLY == documented


def test_document_describes_bodies_and_errors() -> None:
    document = json.loads(COMMITTED.read_text())
    infer = document["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/InferenceRequest"}
    assert "application/octet-stream" in infer["requestBody"]["content"]
    assert infer["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    schemas = document["components"]["schemas"]
    assert {"InferenceRequest", "RequestInput", "InferenceResponse", "ErrorResponse", "PredictRequest"} <= set(schemas)


def test_app_serves_document_and_docs_under_stage(client) -> None:
    served = client.get("/openapi.json").json()
    assert served["paths"].keys() == json.loads(COMMITTED.read_text())["paths"].keys()
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert 'url: "/openapi.json"' in docs.text


def test_docs_page_pins_swagger_ui_with_integrity_hashes(client) -> None:
    """Every script and stylesheet /docs loads from a CDN names one exact version and carries a
    subresource-integrity hash, so the browser refuses a changed file."""
    import re

    docs = client.get("/docs").text
    tags = re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=\"https://[^\"]+\"[^>]*>", docs)
    assert len(tags) == 2
    for tag in tags:
        assert "swagger-ui-dist@5.35.0/" in tag
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/]{64}"', tag), tag
        assert 'crossorigin="anonymous"' in tag
