"""Explanations at build time: the background, the report's global importance (original vs
shipped), and validation.min_explanation_agreement refusing a model whose reasons changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.config import load_config
from slimserve.build.errors import GateFailed
from slimserve.build.gate import explanations
from slimserve.build.gate.explanations import (
    ExplanationReport,
    choose_rows,
    global_importance,
    plan,
)

from repo import REPO_ROOT
from toymodels import _edit_weights

DIGITS = REPO_ROOT / "examples" / "digits"


def test_background_rows_are_stratified_and_fixed_by_the_seed() -> None:
    labels = np.repeat(np.arange(10), 30)
    chosen = choose_rows(len(labels), labels, 16, seed=0)
    assert len(chosen) == 16 and list(chosen) == sorted(chosen)
    assert set(labels[chosen]) == set(range(10))  # every class is in the background
    assert np.array_equal(chosen, choose_rows(len(labels), labels, 16, seed=0))
    assert not np.array_equal(chosen, choose_rows(len(labels), labels, 16, seed=1))
    assert len(choose_rows(5, None, 16, seed=0)) == 5  # fewer rows than asked: all of them


def test_digits_plan_ships_a_small_background_apart_from_the_explained_rows() -> None:
    config = load_config(DIGITS)
    made = plan(config, list(config.export.inputs))
    assert made.background is not None and made.background.shape == (16, 64) and made.background.dtype == np.float32
    assert made.rows is not None and made.rows.shape == (32, 64)
    shared = {row.tobytes() for row in made.background} & {row.tobytes() for row in made.rows}
    assert not shared
    assert made.spec.methods[0] == "kernel-shap" and made.spec.image_shape == [8, 8] and made.spec.patch == [1, 1]


def test_digits_report_shows_importance_side_by_side(digits_build: Path) -> None:
    report = (digits_build / "report.md").read_text()
    assert "## Explanations" in report and "**Rank correlation (Spearman) between the two: " in report
    assert "each row's predicted-class logit over 32 held-out rows (kernel-shap, 1024 coalitions" in report
    manifest = json.loads((digits_build / "manifest.json").read_text())
    assert -1.0 <= manifest["validation"]["extra"]["explanation_agreement"] <= 1.0
    assert (digits_build / "report.png").stat().st_size > 10_000


def mirrored(source: Path, destination: Path) -> Path:
    """The digits MLP reading each image mirrored left-right: as accurate on mirrored digits,
    but its important pixels move to the other side."""
    columns = np.arange(64).reshape(8, 8)[:, ::-1].ravel()

    def edit(get, put):
        put("/0/Gemm", 1, get("/0/Gemm", 1)[:, columns])

    return _edit_weights(source, destination, edit)


def test_a_model_that_is_right_for_other_reasons_ranks_low(digits_build: Path, tmp_path: Path) -> None:
    config = load_config(DIGITS, {"explain.importance_samples": 8})
    original = digits_build / "work" / "fp32.onnx"
    made = plan(config, list(config.export.inputs))
    same = global_importance(config, made, original, original)
    assert same.agreement == pytest.approx(1.0) and np.array_equal(same.original, same.shipped)
    other = global_importance(config, made, original, mirrored(original, tmp_path / "mirrored.onnx"))
    assert other.agreement < 0.9
    assert other.check(0.9).passed is False and same.check(0.9).passed is True
    assert other.check(0.9).explain().startswith("explanation agreement (Spearman) = ")


@pytest.mark.slow
def test_min_explanation_agreement_refuses_the_build(digits_build: Path, tmp_path: Path, monkeypatch) -> None:
    """The gate check is wired into the build: a low agreement fails it, nothing is bundled,
    and report.md says why (the agreement itself is faked: real int8 noise is CPU-dependent).
    ``digits_build`` first: it trains the example's weights when a fresh checkout has none."""
    real = explanations.global_importance

    def changed_reasons(*args, **kwargs) -> ExplanationReport:
        report = real(*args, **kwargs)
        report.agreement = 0.42
        return report

    monkeypatch.setattr("slimserve.build.pipeline.run.global_importance", changed_reasons)
    folder = tmp_path / "digits"
    shutil.copytree(DIGITS, folder, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    from slimserve.build.pipeline.progress import Steps
    from slimserve.build.pipeline.run import run_build

    overrides = {"validation.min_explanation_agreement": 0.9, "explain.importance_samples": 4}
    with pytest.raises(GateFailed, match=r"explanation agreement \(Spearman\) = 0\.42 \(must be >= 0\.9\): MISSED by 0\.48"):
        run_build(folder, out=tmp_path / "out", overrides=overrides, steps=Steps())
    assert not (tmp_path / "out" / "lambda.zip").exists() and not (tmp_path / "out" / "background.npy").exists()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| explanation agreement (Spearman) | 0.42 | >= 0.9 | missed by 0.48 |" in report
    assert "**Rank correlation (Spearman) between the two: 0.4200**" in report


@pytest.mark.slow
@pytest.mark.xdist_group("minilm")
def test_minilm_report_ranks_tokens_of_short_held_out_texts(minilm_build: Path) -> None:
    report = (minilm_build / "report.md").read_text()
    assert "each text's cosine similarity to its own vector over 32 held-out texts of up to 32 tokens" in report
    table = report.split("## Explanations", 1)[1]
    assert table.count("\n| ") >= 11  # header + the top ten token strings
    extra = json.loads((minilm_build / "manifest.json").read_text())["validation"]["extra"]
    assert extra["explanation_rows"] == 32 and 0.5 < extra["explanation_agreement"] <= 1.0
