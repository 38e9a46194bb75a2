"""``slimserve invoke --url``: one request to a deployed API, signed with SigV4 when IAM auth is
on, with the API key when keys are on; prints status, latency and the answer. An answer that is
not 2xx is still a response here; the CLI exits 1 on it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from slimserve.build.errors import CredentialsError, RemoteError, UsageError


@dataclass(frozen=True)
class RemoteResponse:
    status: int
    latency_ms: float
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def summary(self) -> str:
        try:
            text = json.dumps(json.loads(self.body), indent=2)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = f"<{len(self.body)} bytes of {self.headers.get('content-type', 'unknown type')}>"
        request_id = self.headers.get("x-request-id", "-")
        return f"HTTP {self.status} in {self.latency_ms:.1f} ms (request id {request_id})\n{text}"


def sigv4_headers(method: str, url: str, body: bytes | None, headers: dict[str, str], region: str) -> dict[str, str]:
    """Sign for API Gateway's execute-api with the caller's default AWS credentials."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from slimserve.build.deploy.credentials import HOW_TO_PROVIDE

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise CredentialsError(f"--iam signs the request with AWS credentials and none were found: {HOW_TO_PROVIDE}")
    request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def region_of(url: str) -> str | None:
    # https://<id>.execute-api.<region>.amazonaws.com/...
    parts = (urlsplit(url).hostname or "").split(".")
    if len(parts) >= 4 and parts[1] == "execute-api":
        return parts[2]
    return None


def call_url(
    base_url: str,
    *,
    path: str = "/v2",
    body: bytes | None = None,
    api_key: str | None = None,
    iam: bool = False,
    region: str | None = None,
    timeout_s: float = 35.0,
) -> RemoteResponse:
    import httpx

    if not base_url.startswith(("https://", "http://")):
        raise UsageError(f"--url must start with https:// (got {base_url!r})")
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    method = "POST" if body is not None else "GET"
    headers: dict[str, str] = {"content-type": "application/json"} if body is not None else {}
    if api_key:
        headers["x-api-key"] = api_key
    if iam:
        signing_region = region or region_of(url)
        if signing_region is None:
            raise UsageError("cannot tell the AWS region from the URL; pass --region")
        headers = sigv4_headers(method, url, body, headers, signing_region)
    started = time.perf_counter()
    try:
        response = httpx.request(method, url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise RemoteError(f"{method} {url} failed: {exc}") from None
    latency = (time.perf_counter() - started) * 1000
    return RemoteResponse(
        status=response.status_code,
        latency_ms=latency,
        headers={key.lower(): value for key, value in response.headers.items()},
        body=response.content,
    )
