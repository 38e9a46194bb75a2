"""The hostile-input corpus (tests/hostile/corpus.json) through the real Lambda handler."""

from __future__ import annotations

import base64
import json

import pytest

from eventkit import make_event
from repo import TESTS_DIR

CORPUS = json.loads((TESTS_DIR / "hostile" / "corpus.json").read_text())


def body_bytes(case: dict) -> bytes | None:
    if "body_b64" in case:
        return base64.b64decode(case["body_b64"])
    if "body_repeat" in case:
        spec = case["body_repeat"]
        return (spec["prefix"] + spec["chunk"] * spec["times"] + spec["suffix"]).encode()
    if "body" not in case:
        return None
    body = case["body"]
    return (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")


def event_for(kind: str, case: dict) -> dict:
    body = body_bytes(case)
    headers = dict(case.get("headers", {}))
    if headers.get("inference-header-content-length") == "__LEN__":
        headers["inference-header-content-length"] = str(len(body or b""))
    # Non-UTF-8 bodies travel base64-encoded, as API Gateway sends them.
    is_text = body is None or _is_utf8(body)
    event = make_event(kind, case["method"], case["path"], body, headers=headers, base64=not is_text)
    if "raw_event_body" in case:
        event["body"], event["isBase64Encoded"] = case["raw_event_body"], case.get("base64", False)
    return event


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("kind", ["http", "rest"])
@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_hostile_input_gets_exact_status_and_message(lambda_handler, kind: str, case: dict) -> None:
    result = lambda_handler(event_for(kind, case), None)
    assert result["statusCode"] == case["status"], (case["name"], result["statusCode"], result["body"][:300])
    raw = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"].encode()
    document = json.loads(raw)
    if case["error"] is None:
        assert "outputs" in document
    else:
        assert set(document) == {"error"}
        assert case["error"] in document["error"], (case["name"], document["error"])


def test_corpus_is_large_and_covers_every_category() -> None:
    assert len(CORPUS) >= 50
    names = " ".join(case["name"] for case in CORPUS)
    for word in ("truncated", "giant", "nesting", "huge", "header length", "base64", "unknown route", "empty", "NaN"):
        assert word in names, word
