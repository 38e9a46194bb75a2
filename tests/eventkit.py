"""Recorded events and how to fill them like a gateway would (importable from any test:
pyproject sets pytest's pythonpath to tests/)."""

from __future__ import annotations

import json
from pathlib import Path

EVENTS = Path(__file__).resolve().parent / "events"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


EVENT_FILES = {
    "rest": "apigw-rest-v1.json",
    "http": "http-api-v2.json",
    "http-stage": "http-api-v2-stage.json",
    "function-url": "function-url.json",
    "alb": "alb.json",
}


def make_event(
    kind: str,
    method: str,
    path: str,
    body: bytes | str | None = None,
    *,
    headers: dict[str, str] | None = None,
    base64: bool = False,
) -> dict:
    """A recorded event of ``kind`` with the request line, headers and body a client would send,
    placed where that gateway puts them (stage prefix, multi-value headers, base64 body)."""
    import base64 as b64

    event = load_event(EVENT_FILES[kind])
    raw = body.encode() if isinstance(body, str) else body
    if raw is None:
        encoded, is_b64 = "", False
    elif base64:
        encoded, is_b64 = b64.b64encode(raw).decode(), True
    else:
        encoded, is_b64 = raw.decode("utf-8"), False
    extra = {"content-type": "application/json", **(headers or {})} if raw is not None else dict(headers or {})
    event["body"] = encoded
    event["isBase64Encoded"] = is_b64
    if kind in ("http", "http-stage", "function-url"):
        stage = event["requestContext"]["stage"]
        full = path if stage == "$default" else f"/{stage}{path}"
        event["rawPath"] = full
        event["rawQueryString"] = ""
        event.pop("queryStringParameters", None)
        event["requestContext"]["http"].update(method=method, path=full)
        event["headers"] = {**{k.lower(): v for k, v in event["headers"].items()}, **extra}
    elif kind == "rest":
        event.update(path=path, httpMethod=method, pathParameters={"proxy": path.lstrip("/")})
        event["requestContext"].update(path=f"/{event['requestContext']['stage']}{path}", httpMethod=method)
        event["headers"] = {**event["headers"], **extra}
        event["multiValueHeaders"] = {**event["multiValueHeaders"], **{k: [v] for k, v in extra.items()}}
    elif kind == "alb":
        event.update(path=path, httpMethod=method, queryStringParameters={})
        event["headers"] = {**event["headers"], **extra}
    else:
        raise ValueError(kind)
    return event
