"""The authorization step of the local gateway, checked for shape only.

A SigV4 ``Authorization`` header (or presigned query) with every part present, a bearer token,
an ``x-api-key`` equal to a local key. Signatures and tokens are NOT verified locally; what the
request carries (access key id, JWT claims, API key) is passed on to the function as API Gateway
would pass what it verified.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from slimserve.build.local.apigw.errors import GatewayError, GatewayErrorKind, incomplete_signature
from slimserve.build.local.apigw.events import ApiType, AuthContext, HttpRequest
from slimserve.build.local.apigw.routing import Route

SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Denied:
    """Why the gateway refuses a request before it reaches the function."""

    kind: GatewayErrorKind
    detail: str  # for the local log
    answer: GatewayError | None = None  # when it differs from the API type's usual answer


def sigv4_problem(request: HttpRequest) -> str | None:
    """None when the request is SigV4-shaped (``Authorization: AWS4-HMAC-SHA256 Credential=...,
    SignedHeaders=..., Signature=...`` plus X-Amz-Date or Date, or a presigned query string);
    else what a REST API answers (IncompleteSignatureException) about the header."""
    query = parse_qs(request.query)
    presigned = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    if request.header("authorization") is None and all(query.get(name) for name in presigned):
        return None
    value = (request.header("authorization") or "").strip()
    algorithm, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            return (
                f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization "
                f"header: '{value}'."
            )
        name, _, item = part.partition("=")
        params[name.strip()] = item.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name) or algorithm != SIGV4_ALGORITHM
    ]
    if request.header("x-amz-date") is None and request.header("date") is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        return " ".join(problems) + f" Authorization={value}"
    return None


def _sigv4_access_key(request: HttpRequest) -> str | None:
    match = re.search(r"Credential=([^/,\s]+)", request.header("authorization") or "")
    if match:
        return match.group(1)
    credential = parse_qs(request.query).get("X-Amz-Credential")
    return credential[0].split("/", 1)[0] if credential else None


def _claim_text(value: Any) -> str:
    # HTTP API hands claims to the function as strings; arrays as "[a b]".
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict,)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def jwt_claims(token: str) -> dict[str, str]:
    """The claims of a JWT, decoded WITHOUT verification ({} when it is not a JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(claims, dict):
        return {}
    return {str(name): _claim_text(value) for name, value in claims.items()}


def unrouted(request: HttpRequest, api_type: ApiType, detail: str) -> Denied:
    """No route takes the request. REST reads any Authorization header as a SigV4 one before it
    gives up on the route."""
    if api_type == "rest" and request.header("authorization") is not None:
        problem = sigv4_problem(request)
        if problem is not None:
            return Denied("not_found", detail, incomplete_signature(problem))
    return Denied("not_found", detail)


def authorize(
    route: Route, request: HttpRequest, *, api_type: ApiType, api_keys: Mapping[str, str]
) -> AuthContext | Denied | None:
    """Refused, or what the authorizers found (None: an open route)."""
    auth: AuthContext | None = None
    if route.authorization == "iam":
        problem = sigv4_problem(request)
        if request.header("authorization") is None and problem is not None:
            return Denied("iam_missing", "AWS_IAM route, request not signed")
        if problem is not None:
            if api_type == "rest":
                return Denied("iam_missing", problem, incomplete_signature(problem))
            return Denied("iam_missing", f"not a SigV4 signature: {problem}")
        auth = AuthContext("iam", access_key=_sigv4_access_key(request))
    elif route.authorization == "jwt":
        header = (request.header("authorization") or "").strip()
        token = header[7:].strip() if header.lower().startswith("bearer ") else header
        if not token:
            return Denied("jwt_missing", "JWT route, no bearer token")
        auth = AuthContext("jwt", claims=jwt_claims(token))
    if route.api_key_required:
        sent = request.header("x-api-key")
        names = [name for name, value in api_keys.items() if sent and value == sent]
        if not names:
            why = "no x-api-key header" if not sent else "x-api-key is not a key of this stage"
            return Denied("api_key_invalid", why)
        if auth is None:
            auth = AuthContext("api_key", api_key=sent, api_key_id=names[0])
        else:
            auth = AuthContext(auth.kind, auth.access_key, auth.claims, auth.scopes, sent, names[0])
    return auth
