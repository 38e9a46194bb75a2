"""compression = "auto" on the real digits held-out data: the search measures every candidate,
picks by the objective among those that pass, never returns one that fails, and fails with
the table when nothing passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimserve.build.compression.auto import run_search
from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError, GateFailed, SearchFailed
from slimserve.build.gate.accuracy import AccuracyEvaluator
from slimserve.build.gate.reference import Reference

from repo import REPO_ROOT

DIGITS = REPO_ROOT / "examples" / "digits"
FAST = {"runs": 10, "warmup": 2}


def search(digits_models, tmp_path: Path, model: str = "fp32", auto: dict | None = None, **overrides):
    config = load_config(
        DIGITS,
        {
            "compression.method": "auto",
            "compression.auto": {**FAST, **(auto or {})},
            "validation.calibration": "data.py:calibration",
            **overrides,
        },
    )
    reference = Reference(digits_models[model], None, ["pixels"])
    messages: list[str] = []
    try:
        result = run_search(config, reference, AccuracyEvaluator(config, reference), digits_models[model], tmp_path / "work", log=messages.append)
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


def test_auto_on_digits_picks_the_smallest_passing_candidate(digits_models, tmp_path: Path) -> None:
    result = search(digits_models, tmp_path, auto={"objective": "size"})
    _assert_chosen_passes(result)
    table = result.table
    assert table[0]["candidate"] == "fp32 (reference)" and table[0]["status"] == "baseline"
    names = [row["candidate"] for row in table[1:]]
    assert names[:5] == [
        "fp32 (no compression)", "dynamic s8 per-channel", "dynamic s8 per-channel reduce-range", "dynamic u8 per-channel",
        "dynamic s8 per-tensor",
    ]
    assert table[1]["status"] == "passed"  # the uncompressed model is always a candidate
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
    assert any(message.startswith("[2/10] dynamic s8 per-channel: passed") for message in search.messages)


def test_auto_keeps_the_sensitive_node_fp32_when_every_recipe_fails(digits_models, tmp_path: Path) -> None:
    result = search(digits_models, tmp_path, "outlier", auto={"objective": "size", "candidates": [{"method": "dynamic-int8"}]})
    _assert_chosen_passes(result)
    assert result.chosen.name == "dynamic s8 per-channel + top 1 sensitive fp32"
    assert result.chosen.origin == "sensitivity"
    assert result.applied["nodes_to_exclude"] == ["/2/Gemm"]
    fp32, first = result.results[:2]
    assert fp32.status == "passed" and fp32.name == "fp32 (no compression)"  # passing, but larger
    assert first.status == "failed gate" and first.gate.candidate < 0.6
    assert result.sensitivity[0].ranked()[0].node == "/2/Gemm"
    assert "## Sensitivity of dynamic s8 per-channel (leave-one-out" in result.markdown()


def test_auto_never_returns_a_failing_model_and_reports_every_try(digits_models, tmp_path: Path) -> None:
    with pytest.raises(SearchFailed) as caught:
        search(
            digits_models, tmp_path, "outlier",
            auto={
                "candidates": [{"method": "dynamic-int8"}, {"method": "dynamic-int8", "per_channel": False, "name": "per-tensor"}],
                "max_excluded": 0,
                "max_size_ratio": 0.5,  # rules fp32 out: without a requirement it always passes
            },
        )
    failure = caught.value
    assert isinstance(failure, GateFailed)  # the CLI's exit code 3 and message path
    message = str(failure)
    assert message.startswith("auto compression found no candidate that passes the accuracy gate and the requirements: 3 tried in ")
    assert "Nothing was bundled." in message
    assert "fp32 (reference)" in message and "per-tensor" in message
    assert "Closest: fp32 (no compression): size 100.0% of fp32 (max 50%)." in message
    assert [row["status"] for row in failure.table] == ["baseline", "failed requirement", "failed gate", "failed gate"]
    assert failure.table[1]["reasons"] == ["size 100.0% of fp32 (max 50%)"]
    assert not failure.gate.passed
    assert "**No candidate passed: nothing was bundled.**" in (tmp_path / "work" / "search" / "search.md").read_text()


def test_requirements_reject_candidates_that_pass_the_gate(digits_models, tmp_path: Path) -> None:
    with pytest.raises(SearchFailed) as caught:
        search(digits_models, tmp_path, auto={"candidates": [{"method": "fp16"}], "max_size_ratio": 0.3})
    row = caught.value.table[2]
    assert row["candidate"] == "fp16" and row["gate_passed"] is True and row["status"] == "failed requirement"
    assert row["reasons"][0].startswith("size 5") and row["reasons"][0].endswith("of fp32 (max 30%)")
    assert "and the requirements" in str(caught.value)


def test_time_budget_bounds_the_search_but_fp32_is_always_weighed(digits_models, tmp_path: Path) -> None:
    result = search(digits_models, tmp_path, auto={"time_budget_s": 0.001})
    assert result.stopped_by_budget and result.chosen.name == "fp32 (no compression)"
    assert {row["status"] for row in result.table[2:]} == {"skipped"}
    assert "(stopped by the time budget)" in result.markdown()


def test_auto_config_errors(tmp_path: Path) -> None:
    text = (DIGITS / "slimserve.toml").read_text().replace('method = "dynamic-int8"', 'method = "auto"')
    cases = {
        '[compression.auto]\ncandidates = [{ method = "auto" }]\n': "  compression.auto.candidates.0.method: Input should be 'none', 'dynamic-int8', 'static-int8', 'fp16', 'matmul-nbits' or 'per-token-int8'",
        '[compression.auto]\ncandidates = [{ method = "per-token-int8", weight_type = "uint8" }]\n': "  compression.auto.candidates.0.weight_type: per-token-int8 quantizes weights to int8 (onnxruntime's MatMulIntegerToFloat s8 kernels); got 'uint8'",
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
