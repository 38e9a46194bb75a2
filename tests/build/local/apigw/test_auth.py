"""The local gateway's authorization step (build/local/apigw/auth.py) and the answers that go
with a refusal (build/local/apigw/errors.py): shapes checked, nothing verified."""

from __future__ import annotations

import json

from slimserve.build.local.apigw.auth import Denied, authorize, jwt_claims, sigv4_problem, unrouted
from slimserve.build.local.apigw.errors import answer_for
from slimserve.build.local.apigw.events import AuthContext, HttpRequest
from slimserve.build.local.apigw.routing import Route
from slimserve.build.local.console import LOCAL_SIGV4_HEADERS

from localkit import fake_jwt


def request(headers: list[tuple[str, str]] = (), query: str = "") -> HttpRequest:
    return HttpRequest("GET", "/", query, [("Host", "h"), *headers])


def test_sigv4_is_checked_for_shape_only() -> None:
    assert sigv4_problem(request(list(LOCAL_SIGV4_HEADERS))) is None
    presigned = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101&"
        "X-Amz-Date=20240101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=abc"
    )
    assert sigv4_problem(request(query=presigned)) is None
    problem = sigv4_problem(request([("Authorization", "AWS4-HMAC-SHA256 Credential=x")]))
    assert problem is not None
    assert problem.startswith("Authorization header requires 'Signature' parameter.")


def test_an_iam_route_passes_the_access_key_on() -> None:
    route = Route("ANY", "$default", "iam")
    unsigned = authorize(route, request(), api_type="http", api_keys={})
    assert unsigned == Denied("iam_missing", "AWS_IAM route, request not signed")
    signed = authorize(route, request(list(LOCAL_SIGV4_HEADERS)), api_type="http", api_keys={})
    assert signed == AuthContext("iam", access_key="AKIDLOCAL")
    # REST names what is missing from an incomplete signature, with its own error type.
    bearer = request([("Authorization", "Bearer x")])
    refused = authorize(route, bearer, api_type="rest", api_keys={})
    assert isinstance(refused, Denied) and refused.answer is not None
    assert refused.answer.error_type == "IncompleteSignatureException"


def test_jwt_claims_are_decoded_not_verified() -> None:
    token = fake_jwt({"sub": "u", "aud": ["a", "b"], "admin": True})
    assert jwt_claims(token) == {"sub": "u", "aud": "[a b]", "admin": "true"}
    assert jwt_claims("not-a-jwt") == {}
    route = Route("ANY", "$default", "jwt")
    found = authorize(route, request([("Authorization", f"Bearer {token}")]), api_type="http",
                      api_keys={})  # fmt: skip
    assert isinstance(found, AuthContext) and found.claims["sub"] == "u"


def test_api_keys_must_be_a_key_of_the_stage() -> None:
    route = Route("ANY", "/", api_key_required=True)
    keys = {"default": "secret"}
    missing = authorize(route, request(), api_type="rest", api_keys=keys)
    assert missing == Denied("api_key_invalid", "no x-api-key header")
    wrong = authorize(route, request([("x-api-key", "nope")]), api_type="rest", api_keys=keys)
    assert wrong == Denied("api_key_invalid", "x-api-key is not a key of this stage")
    right = authorize(route, request([("x-api-key", "secret")]), api_type="rest", api_keys=keys)
    assert right == AuthContext("api_key", api_key="secret", api_key_id="default")


def test_an_unrouted_rest_request_with_authorization_gets_the_signature_answer() -> None:
    assert unrouted(request(), "rest", "no route") == Denied("not_found", "no route")
    refused = unrouted(request([("Authorization", "Bearer x")]), "rest", "no route")
    assert refused.answer is not None and refused.answer.status == 403
    assert json.loads(refused.answer.body) == {
        "message": "'x' not a valid key=value pair (missing equal-sign) in Authorization header: "
        "'Bearer x'."
    }
    assert unrouted(request([("Authorization", "Bearer x")]), "http", "x").answer is None


def test_rests_body_limit_answer_names_the_limit() -> None:
    answer = answer_for("rest", "body_too_large", max_body_bytes=1234)
    assert (answer.status, answer.body) == (413, b"HTTP content length exceeded 1234 bytes.")
    assert answer.content_type == "text; charset=utf-8"
    assert answer_for("http", "body_too_large", max_body_bytes=1234).body == (
        b'{"message":"Request Entity Too Large"}'
    )
