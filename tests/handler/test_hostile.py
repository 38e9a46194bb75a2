"""The hostile-input corpus (tests/hostile/corpus.json) in process: each request goes through the
local gateway's API Gateway logic (build/local/apigw/gateway.py: body limits, the event an HTTP
API or REST API builds, the way back) into the real Lambda handler of each example, and must get
exactly the status and message the corpus names. The same corpus runs against `slimserve local`
in every stack shape in tests/build/local/test_hostile.py."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.events import HttpRequest
from slimserve.build.local.apigw.gateway import Gateway
from slimserve.build.local.runtime_api import InvocationResult
from slimserve.handler.manifest import Manifest

from hostilekit import GROUPS, Case, load_corpus, mismatch, stack_config

CORPUS = load_corpus()

LambdaHandler = Callable[[dict, Any], dict]


def send(handler: LambdaHandler, config: GatewayConfig, case: Case) -> tuple[int, dict[str, str], bytes]:
    """``case`` through the gateway logic into ``handler``, in this process."""

    def submit(payload: bytes, _wait_s: float) -> Future[InvocationResult | None]:
        event = json.loads(payload)
        event.update(case.event_body or {})
        future: Future[InvocationResult | None] = Future()
        future.set_result(InvocationResult("in-process", json.dumps(handler(event, None)).encode()))
        return future

    path, _, query = case.path.partition("?")
    request = HttpRequest(case.method, config.stage_prefix + path, query, [("Host", "localhost"), *case.headers], case.body)
    response = Gateway(config, submit).handle(request).response
    return response.status, {k.lower(): v for k, v in response.headers}, response.body


def cases_of(model: str) -> list[Case]:
    return [case for case in CORPUS if case.model == model]


def run(handler: LambdaHandler, manifest: Manifest, api_type: str, case: Case) -> None:
    status, headers, body = send(handler, stack_config(manifest, api_type), case)
    problem = mismatch(case.expected_for(api_type), status, headers, body)
    assert problem is None, f"{case.name}: {problem}"


@pytest.mark.parametrize("api_type", ["http", "rest"])
@pytest.mark.parametrize("case", cases_of("digits"), ids=lambda case: case.name)
def test_digits(lambda_handler, digits_model, api_type: str, case: Case) -> None:
    run(lambda_handler, digits_model.manifest, api_type, case)


@pytest.fixture(scope="module")
def minilm(minilm_build: Path) -> tuple[LambdaHandler, Manifest]:
    from slimserve.handler.app import create_app
    from slimserve.handler.gateway import make_lambda_handler
    from slimserve.handler.model import load_model

    model = load_model(minilm_build, intra_op_threads=1)
    return make_lambda_handler(create_app(model)), model.manifest


@pytest.mark.slow
@pytest.mark.xdist_group("minilm")
@pytest.mark.parametrize("api_type", ["http", "rest"])
@pytest.mark.parametrize("case", cases_of("minilm"), ids=lambda case: case.name)
def test_minilm(minilm, api_type: str, case: Case) -> None:
    run(*minilm, api_type, case)


def test_corpus_is_large_and_covers_every_group() -> None:
    per_group = Counter(case.group for case in CORPUS)
    assert set(per_group) == set(GROUPS), per_group
    assert all(count >= 10 for count in per_group.values()), per_group
    assert {case.model for case in CORPUS} == {"digits", "minilm"}
    assert len(CORPUS) >= 250
