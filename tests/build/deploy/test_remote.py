"""slimserve invoke --url: SigV4 signing, API keys, status/latency/answer, clear errors."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slimserve.build.deploy.remote import call_url, region_of
from slimserve.build.errors import CredentialsError, RemoteError, UsageError


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        payload = json.dumps({"ready": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-request-id", "req-42")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_get_prints_status_latency_and_answer(server: str) -> None:
    response = call_url(server, path="/v2/health/ready")
    assert response.status == 200
    assert response.latency_ms > 0
    summary = response.summary()
    assert summary.startswith("HTTP 200 in ") and "(request id req-42)" in summary and '"ready": true' in summary


def test_api_key_is_sent(server: str) -> None:
    call_url(server, path="/v2/models/digits/infer", body=b'{"inputs": []}', api_key="k-123")
    seen = _Recorder.seen[-1]
    assert seen["method"] == "POST" and seen["headers"]["x-api-key"] == "k-123"
    assert seen["body"] == b'{"inputs": []}'


def test_iam_signs_with_sigv4(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    call_url(server, path="/v2", iam=True, region="eu-west-1")
    headers = {k.lower(): v for k, v in _Recorder.seen[-1]["headers"].items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["authorization"]
    assert "x-amz-date" in headers


def test_iam_without_credentials_is_a_clear_error(server: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CredentialsError, match=r"^--iam signs the request with AWS credentials and none were found: set AWS_PROFILE"):
        call_url(server, path="/v2", iam=True, region="us-east-1")


def test_region_comes_from_the_execute_api_url() -> None:
    assert region_of("https://abc123.execute-api.ap-south-1.amazonaws.com/prod/v2") == "ap-south-1"
    assert region_of("http://127.0.0.1:8080") is None
    with pytest.raises(UsageError, match="^cannot tell the AWS region from the URL; pass --region$"):
        call_url("http://127.0.0.1:9", iam=True)


def test_only_http_urls(server: str) -> None:
    with pytest.raises(UsageError, match=r"^--url must start with https:// \(got 'ftp://example'\)$"):
        call_url("ftp://example")


def test_an_error_answer_is_a_response_that_is_not_ok(server: str) -> None:
    response = call_url(server, path="/v2")
    assert response.ok
    assert not dataclasses.replace(response, status=403).ok
    assert not dataclasses.replace(response, status=500).ok


def test_unreachable_url_is_a_clear_error() -> None:
    with pytest.raises(RemoteError, match="GET http://127.0.0.1:9/v2 failed"):
        call_url("http://127.0.0.1:9", timeout_s=2)
