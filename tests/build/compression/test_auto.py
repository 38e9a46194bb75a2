"""compression = "auto" on the real digits held-out data: the search measures every candidate,
picks by the objective among those that pass, never returns one that fails, and fails with
the table when nothing passes. Also the latency helper it (and the benchmarks) time with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.compression.auto import lambda_threads, run_search
from slimserve.build.compression.latency import compare, measure, session_for, synthetic_feed
from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError, GateFailed, SearchFailed
from slimserve.build.gate.accuracy import AccuracyEvaluator
from slimserve.build.gate.reference import Reference

from repo import REPO_ROOT
from toymodels import outlier_model

DIGITS = REPO_ROOT / "examples" / "digits"
FAST = {"runs": 10, "warmup": 2}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from slimserve.build.pipeline.export import export_onnx
    from slimserve.build.pipeline.source import load_torch_model

    folder = tmp_path_factory.mktemp("search-models")
    config = load_config(DIGITS)
    fp32 = export_onnx(load_torch_model(config), config.export, folder / "fp32.onnx")
    return {"fp32": fp32, "outlier": outlier_model(fp32, folder / "outlier.onnx")}


def search(models, tmp_path: Path, model: str = "fp32", auto: dict | None = None, **overrides):
    config = load_config(
        DIGITS,
        {
            "compression.method": "auto",
            "compression.auto": {**FAST, **(auto or {})},
            "validation.calibration": "data.py:calibration",
            **overrides,
        },
    )
    reference = Reference(models[model], None, ["pixels"])
    messages: list[str] = []
    try:
        result = run_search(config, reference, AccuracyEvaluator(config, reference), models[model], tmp_path / "work", log=messages.append)
    finally:
        search.messages = messages
    return result


def _assert_chosen_passes(result) -> None:
    assert result.chosen is not None and result.chosen_gate.passed
    assert result.chosen_path.is_file()
    statuses = [row["status"] for row in result.table]
    assert statuses.count("chosen") == 1
    chosen_row = next(row for row in result.table if row["status"] == "chosen")
    assert chosen_row["gate_passed"] is True and chosen_row["reasons"] == []


def test_auto_on_digits_picks_the_smallest_passing_candidate(models, tmp_path: Path) -> None:
    result = search(models, tmp_path, auto={"objective": "size"})
    _assert_chosen_passes(result)
    table = result.table
    assert table[0]["candidate"] == "fp32 (reference, not eligible)" and table[0]["status"] == "baseline"
    names = [row["candidate"] for row in table[1:]]
    assert names[:4] == ["dynamic s8 per-channel", "dynamic s8 per-channel reduce-range", "dynamic u8 per-channel", "dynamic s8 per-tensor"]
    assert "fp16" in names and "static Entropy per-channel reduce-range" in names
    passing = [row for row in table if row["status"] in ("passed", "chosen")]
    assert result.chosen.bytes <= min(row["bytes"] for row in passing) * 1.01
    assert result.chosen.config.method in ("dynamic-int8", "static-int8")
    applied = result.applied
    assert applied["method"] == result.chosen.config.method and applied["selected_by"] == "auto"
    assert applied["auto"]["candidate"] == result.chosen.name and applied["auto"]["objective"] == "size"
    assert applied["auto"]["size_ratio"] < 0.35 and applied["auto"]["threads"] == 1
    # report artefacts: markdown table, Pareto plot, machine-readable table
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = result.markdown_path.read_text()
    assert '## Compression search (compression = "auto")' in markdown and f"Chosen: **{result.chosen.name}**." in markdown
    assert "| # | candidate | result | accuracy | accuracy loss | size | vs fp32 | median ms | p90 ms | CPU ms | speed-up |" in markdown
    assert len(json.loads((tmp_path / "work" / "search" / "search.json").read_text())) == len(table)
    assert any(message.startswith("[1/9] dynamic s8 per-channel: passed") for message in search.messages)


def test_auto_keeps_the_sensitive_node_fp32_when_every_recipe_fails(models, tmp_path: Path) -> None:
    result = search(models, tmp_path, "outlier", auto={"candidates": [{"method": "dynamic-int8"}]})
    _assert_chosen_passes(result)
    assert result.chosen.name == "dynamic s8 per-channel + top 1 sensitive fp32"
    assert result.chosen.origin == "sensitivity"
    assert result.applied["nodes_to_exclude"] == ["/2/Gemm"]
    first = result.results[0]
    assert first.status == "failed gate" and first.gate.candidate < 0.6
    assert result.sensitivity[0].ranked()[0].node == "/2/Gemm"
    assert "## Sensitivity of dynamic s8 per-channel (leave-one-out" in result.markdown()


def test_auto_never_returns_a_failing_model_and_reports_every_try(models, tmp_path: Path) -> None:
    with pytest.raises(SearchFailed) as caught:
        search(
            models, tmp_path, "outlier",
            auto={"candidates": [{"method": "dynamic-int8"}, {"method": "dynamic-int8", "per_channel": False, "name": "per-tensor"}], "max_excluded": 0},
        )
    failure = caught.value
    assert isinstance(failure, GateFailed)  # the CLI's exit code 3 and message path
    message = str(failure)
    assert message.startswith("auto compression found no candidate that passes the accuracy gate: 2 tried in ")
    assert "Nothing was bundled." in message
    assert "fp32 (reference, not eligible)" in message and "per-tensor" in message
    assert "Closest: dynamic s8 per-channel: accuracy loss = " in message
    assert [row["status"] for row in failure.table] == ["baseline", "failed gate", "failed gate"]
    assert not failure.gate.passed
    assert "**No candidate passed: nothing was bundled.**" in (tmp_path / "work" / "search" / "search.md").read_text()


def test_requirements_reject_candidates_that_pass_the_gate(models, tmp_path: Path) -> None:
    with pytest.raises(SearchFailed) as caught:
        search(models, tmp_path, auto={"candidates": [{"method": "fp16"}], "max_size_ratio": 0.3})
    row = caught.value.table[1]
    assert row["gate_passed"] is True and row["status"] == "failed requirement"
    assert row["reasons"][0].startswith("size 5") and row["reasons"][0].endswith("of fp32 (max 30%)")
    assert "and the requirements" in str(caught.value)


def test_time_budget_bounds_the_search(models, tmp_path: Path) -> None:
    with pytest.raises(SearchFailed) as caught:
        search(models, tmp_path, auto={"time_budget_s": 0.001})
    statuses = {row["status"] for row in caught.value.table[1:]}
    assert statuses == {"skipped"}
    assert "(time budget reached)" in str(caught.value)


def test_auto_config_errors(tmp_path: Path) -> None:
    text = (DIGITS / "slimserve.toml").read_text().replace('method = "dynamic-int8"', 'method = "auto"')
    cases = {
        '[compression.auto]\ncandidates = [{ method = "auto" }]\n': "  compression.auto.candidates.0.method: Input should be 'none', 'dynamic-int8', 'static-int8', 'fp16' or 'matmul-nbits'",
        '[compression.auto]\nobjective = "accuracy"\n': "  compression.auto.objective: Input should be 'latency' or 'size'",
        "[compression.auto]\ntime_budget_s = 0\n": "  compression.auto.time_budget_s: Input should be greater than 0",
        '[compression.auto]\ncandidates = [{ method = "static-int8", percentile = 99.0 }]\n': "  compression.auto.candidates.0.percentile: applies only to calibrate_method = 'Percentile' (got 'MinMax')",
        "[compression.auto]\ncandidates = [{ method = \"fp16\", blocksize = 64 }]\n": "  compression.auto.candidates.0.blocksize: unknown key (did you mean 'block_size'?)",
    }
    for addition, message in cases.items():
        (tmp_path / "slimserve.toml").write_text(text.replace("[validation]", addition + "\n[validation]"))
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path)
        assert message in str(caught.value).splitlines(), str(caught.value)


def test_candidate_override_inherits_the_rest_of_the_compression_section(tmp_path: Path) -> None:
    text = (DIGITS / "slimserve.toml").read_text().replace(
        'method = "dynamic-int8"', 'method = "auto"\nnodes_to_exclude = ["/4/Gemm"]'
    ).replace("[validation]", '[compression.auto]\ncandidates = [{ method = "dynamic-int8", per_channel = false }]\n\n[validation]')
    (tmp_path / "slimserve.toml").write_text(text)
    compression = load_config(tmp_path).compression
    candidate = compression.candidate(compression.auto.candidates[0])
    assert (candidate.method, candidate.per_channel, candidate.nodes_to_exclude) == ("dynamic-int8", False, ["/4/Gemm"])


def test_lambda_threads_follow_memory() -> None:
    assert lambda_threads(128) == 1 and lambda_threads(1024) == 1 and lambda_threads(1769) == 1
    assert lambda_threads(3538) == min(2, __import__("os").cpu_count() or 1)


def test_latency_helper(models) -> None:
    session = session_for(models["fp32"], threads=1)
    feed = synthetic_feed(session, [1, 16])
    assert feed["pixels"].shape == (1, 64) and feed["pixels"].dtype == np.float32
    latency = measure(session, feed, runs=20, warmup=2)
    assert 0 < latency.median_ms <= latency.p90_ms and latency.runs == 20 and latency.threads == 1
    timings = compare({"a": models["fp32"], "b": models["outlier"]}, runs=20, rounds=4, free_dims=[8])
    assert set(timings) == {"a", "b"} and timings["a"].runs == 20
    assert "ms median" in str(latency)


# -- the entry points build/pipeline/run.py calls --------------------------------------------------


def _stage(models, tmp_path: Path, model: str, **overrides):
    from slimserve.build.compression.auto import compress_and_gate, prepare_source
    from slimserve.build.pipeline.progress import Steps

    config = load_config(DIGITS, {"validation.calibration": "data.py:calibration", **overrides})
    reference = Reference(models[model], None, ["pixels"])
    source, manifest_extra, sections = prepare_source(config, reference, tmp_path)
    assert (source, manifest_extra, sections) == (models[model], {}, [])
    outcome = compress_and_gate(config, reference, AccuracyEvaluator(config, reference), source, tmp_path, Steps())
    report = tmp_path / "out" / "report.md"
    report.parent.mkdir()
    report.write_text("# report\n")
    outcome.append_to_report(report)
    return outcome, report


def test_stage_auto_passes_and_extends_the_report(models, tmp_path: Path) -> None:
    outcome, report = _stage(models, tmp_path, "fp32", **{"compression.method": "auto", "compression.auto": {**FAST, "objective": "size"}})
    assert outcome.gate.passed and outcome.failure is None
    assert outcome.path == tmp_path / "compressed.onnx" and outcome.path.is_file()
    assert outcome.applied["selected_by"] == "auto"
    text = report.read_text()
    assert text.startswith("# report\n") and '## Compression search (compression = "auto")' in text
    assert (report.parent / "search.png").is_file()


def test_stage_auto_failure_is_a_search_failed_with_the_table(models, tmp_path: Path) -> None:
    outcome, report = _stage(
        models, tmp_path, "outlier",
        **{"compression.method": "auto", "compression.auto": {**FAST, "candidates": [{"method": "dynamic-int8"}], "max_excluded": 0}},
    )
    assert not outcome.gate.passed and isinstance(outcome.failure, SearchFailed)
    assert outcome.path.is_file()  # the closest candidate, for the report's sizes; never bundled
    assert "**No candidate passed: nothing was bundled.**" in report.read_text()


def test_stage_fixed_method_failure_explains_where_accuracy_is_lost(models, tmp_path: Path) -> None:
    outcome, report = _stage(models, tmp_path, "outlier")
    assert not outcome.gate.passed and outcome.failure is None
    assert outcome.applied["method"] == "dynamic-int8"
    text = report.read_text()
    assert "## Sensitivity (leave-one-out: each node kept in fp32 alone)" in text
    assert "| 1 | `/2/Gemm` | Gemm |" in text


def test_stage_fixed_method_pass_has_no_sensitivity_by_default(models, tmp_path: Path) -> None:
    outcome, report = _stage(models, tmp_path, "fp32")
    assert outcome.gate.passed and outcome.applied["per_channel"] is True
    assert report.read_text() == "# report\n"
