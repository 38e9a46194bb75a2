"""Fresh interpreters for the cold start: the driver runs a handler file in a Lambda-like
environment and reports spawn-to-answer times; failures say what the child said."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from slimserve.build.bench.spawn import DRIVER, Contender, base_env, import_profile, run_once

HANDLER = """
import fractions, os

def handler(event, context):
    status = int(os.environ.get("ANSWER", "200"))
    if status == 0:
        raise SystemExit(3)
    return {"statusCode": status, "body": event["rawPath"] + " " + context.function_name}
"""


def _contender(tmp_path: Path, answer: str = "200") -> Contender:
    handler = tmp_path / "tiny_handler.py"
    handler.write_text(HANDLER)
    event = tmp_path / "event.json"
    event.write_text('{"rawPath": "/v2/models/tiny/infer"}')
    env = {
        **base_env(tmp_path, []),
        "BENCH_MODE": "handler",
        "BENCH_HANDLER": "tiny_handler.handler",
        "BENCH_HANDLER_FILE": str(handler),
        "BENCH_EVENT": str(event),
        "ANSWER": answer,
    }
    return Contender("tiny", [sys.executable, "-S", "-c", DRIVER], env, tmp_path, "a tiny handler")


def test_base_env_is_lambda_like_and_inherits_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMSERVE_SECRET_OF_THE_SUITE", "1")
    env = base_env(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert env["PYTHONPATH"] == f"{tmp_path / 'a'}:{tmp_path / 'b'}" and env["HOME"] == str(tmp_path)
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "slimserve-bench" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "SLIMSERVE_SECRET_OF_THE_SUITE" not in env


def test_one_run_times_spawn_import_and_first_answer(tmp_path: Path) -> None:
    sample = run_once(_contender(tmp_path), timeout_s=60)
    assert set(sample) == {"total_ms", "interpreter_ms", "import_init_ms", "first_request_ms"}
    assert all(value >= 0 and not math.isnan(value) for value in sample.values())
    assert sample["total_ms"] == pytest.approx(
        sample["interpreter_ms"] + sample["import_init_ms"] + sample["first_request_ms"], rel=1e-6
    )


def test_a_wrong_answer_or_a_crash_is_an_error_with_what_the_child_said(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"^tiny: answered status 500: /v2/models/tiny/infer slimserve-bench$"):
        run_once(_contender(tmp_path, answer="500"), timeout_s=60)
    with pytest.raises(RuntimeError, match=r"^tiny: exited with status 3 before answering"):
        run_once(_contender(tmp_path, answer="0"), timeout_s=60)


def test_the_import_profile_sums_self_time_by_top_level_package(tmp_path: Path) -> None:
    profile = import_profile(_contender(tmp_path), timeout_s=60)
    assert "fractions" in profile["all_packages_self_ms"]  # imported by the handler, not by the driver
    assert profile["total_self_ms"] == pytest.approx(sum(profile["all_packages_self_ms"].values()))
    assert len(profile["top_packages_self_ms"]) <= 15
