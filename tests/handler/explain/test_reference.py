"""slimserve's estimators (numpy only) against the shap library on the same model, background
and inputs: exact Kernel SHAP equal within 1e-4, sampled modes ranked alike (Spearman >= 0.95),
and additivity (base + sum of attributions = explained output) in every case. Every model here
is fp32: nothing depends on quantization noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shap
from scipy.stats import spearmanr
from shap.utils._legacy import DenseData

from slimserve.build.gate.validate import onnx_session
from slimserve.handler.explain.games import patch_groups, tensor_game
from slimserve.handler.explain.shapley import kernel_shap, leave_one_out, shapley_sampling
from slimserve.handler.tasks.classification import probabilities

from toymodels import tabular_classifier


def class_scorer(path: Path, input_name: str, target: int, probability: bool = False):
    """One class's logit (what the API explains by default) or its softmax probability."""
    session = onnx_session(path)

    def score(rows: np.ndarray) -> np.ndarray:
        logits = session.run(None, {input_name: np.asarray(rows, dtype=np.float32)})[0]
        return (probabilities(logits, "logits") if probability else logits)[:, target]

    return score


def additive(game, values: np.ndarray) -> float:
    return abs(game.empty + float(values.sum()) - game.full)


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tabular_classifier(tmp_path_factory.mktemp("tabular"))


@pytest.mark.parametrize("target,probability", [(0, False), (2, False), (1, True)])
def test_exact_kernel_shap_equals_shap(tabular: Path, target: int, probability: bool) -> None:
    background = np.load(tabular / "background.npy")
    score = class_scorer(tabular / "model.onnx", "x", target, probability)
    reference = shap.KernelExplainer(score, background)
    rows = np.random.default_rng(7).normal(size=(4, background.shape[1])).astype(np.float32)
    for row in rows:
        game = tensor_game(row, background, np.arange(row.size), score, float(score(row[None])[0]))
        mine = kernel_shap(game.game, samples=16, seed=0, exact_max_players=12)
        # 2**8 samples >= 2**8 - 2 coalitions: shap enumerates every coalition too.
        theirs = reference.shap_values(row, nsamples=2**row.size, l1_reg=False, silent=True)
        assert mine.exact and mine.coalitions == 2**row.size - 2
        np.testing.assert_allclose(game.per_feature(mine.values), theirs, atol=1e-4)
        assert game.game.empty == pytest.approx(float(reference.expected_value), abs=1e-6)
        assert additive(game.game, mine.values) < 1e-9


def test_exact_kernel_shap_is_the_shapley_formula(tabular: Path) -> None:
    """The weighted least squares under the efficiency constraint lands on the Shapley values
    computed from their definition (every coalition, marginal contributions)."""
    from itertools import combinations
    from math import comb

    background = np.load(tabular / "background.npy")
    score = class_scorer(tabular / "model.onnx", "x", 1)
    row = np.random.default_rng(3).normal(size=background.shape[1]).astype(np.float32)
    game = tensor_game(row, background, np.arange(row.size), score, float(score(row[None])[0])).game
    n = game.players

    def value(members: tuple[int, ...]) -> float:
        mask = np.zeros((1, n), dtype=bool)
        mask[0, list(members)] = True
        return float(game.value(mask)[0])

    formula = np.zeros(n)
    for player in range(n):
        others = [other for other in range(n) if other != player]
        for size in range(n):
            for members in combinations(others, size):
                weight = 1.0 / (n * comb(n - 1, size))
                formula[player] += weight * (value((*members, player)) - value(members))
    mine = kernel_shap(game, samples=16, seed=0, exact_max_players=12)
    np.testing.assert_allclose(mine.values, formula, atol=1e-6)


@pytest.fixture(scope="module")
def digits_fp32(digits_build: Path, heldout) -> tuple[Path, np.ndarray, np.ndarray]:
    pixels, _ = heldout
    return digits_build / "work" / "fp32.onnx", np.load(digits_build / "background.npy"), pixels[[0, 11, 42]]


def test_sampled_kernel_shap_ranks_pixels_like_shap(digits_fp32) -> None:
    """48-49 pixels differ from the background: sampled at the default budget (1,024
    coalitions), against shap at 8,192."""
    path, background, rows = digits_fp32
    for row in rows:
        score = class_scorer(path, "pixels", int(np.argmax(_logits(path, row))))
        game = tensor_game(row, background, np.arange(64), score, float(score(row[None])[0]))
        mine = kernel_shap(game.game, samples=1024, seed=0, exact_max_players=12)
        theirs = shap.KernelExplainer(score, background).shap_values(row, nsamples=8192, l1_reg=False, silent=True)
        assert not mine.exact and game.game.players > 12
        assert spearmanr(game.per_feature(mine.values), theirs).statistic >= 0.95
        assert additive(game.game, mine.values) < 1e-9


def test_sampled_kernel_shap_ranks_patches_like_shap(digits_fp32) -> None:
    """2x2 superpixels: 16 groups (sampled above 12), against shap's grouped KernelExplainer."""
    path, background, rows = digits_fp32
    groups = patch_groups(64, [8, 8], [2, 2])
    members = [np.flatnonzero(groups == group) for group in range(16)]
    for row in rows:
        score = class_scorer(path, "pixels", int(np.argmax(_logits(path, row))))
        game = tensor_game(row, background, groups, score, float(score(row[None])[0]))
        mine = kernel_shap(game.game, samples=512, seed=0, exact_max_players=12)
        grouped = DenseData(background, [f"patch{group}" for group in range(16)], members)
        theirs = shap.KernelExplainer(score, grouped).shap_values(row, nsamples=8192, l1_reg=False, silent=True)
        per_patch = np.array([game.per_feature(mine.values)[indices].sum() for indices in members])
        assert not mine.exact
        assert spearmanr(per_patch, theirs).statistic >= 0.95
        assert additive(game.game, mine.values) < 1e-9


def test_shapley_sampling_ranks_like_shap_and_is_additive(digits_fp32) -> None:
    path, background, rows = digits_fp32
    row = rows[0]
    score = class_scorer(path, "pixels", int(np.argmax(_logits(path, row))))
    game = tensor_game(row, background, np.arange(64), score, float(score(row[None])[0]))
    mine = shapley_sampling(game.game, samples=1024, seed=0)
    theirs = shap.KernelExplainer(score, background).shap_values(row, nsamples=8192, l1_reg=False, silent=True)
    assert spearmanr(game.per_feature(mine.values), theirs).statistic >= 0.95
    assert additive(game.game, mine.values) < 1e-9


def test_leave_one_out_is_the_drop_of_each_player(tabular: Path) -> None:
    background = np.load(tabular / "background.npy")
    score = class_scorer(tabular / "model.onnx", "x", 0)
    row = np.random.default_rng(5).normal(size=background.shape[1]).astype(np.float32)
    game = tensor_game(row, background, np.arange(row.size), score, float(score(row[None])[0])).game
    mine = leave_one_out(game)
    dropped = float(game.value(~np.eye(game.players, dtype=bool)[:1])[0])
    assert mine.values[0] == pytest.approx(game.full - dropped)
    assert mine.coalitions == game.players


@pytest.mark.parametrize("method", ["kernel", "sampling"])
def test_same_seed_same_attributions_other_seed_other_draw(digits_fp32, method: str) -> None:
    path, background, rows = digits_fp32
    score = class_scorer(path, "pixels", int(np.argmax(_logits(path, rows[1]))))
    game = tensor_game(rows[1], background, np.arange(64), score, float(score(rows[1][None])[0])).game

    def run(seed: int) -> np.ndarray:
        if method == "kernel":
            return kernel_shap(game, samples=256, seed=seed, exact_max_players=12).values
        return shapley_sampling(game, samples=256, seed=seed).values

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def _logits(path: Path, row: np.ndarray) -> np.ndarray:
    return onnx_session(path).run(None, {"pixels": row[None].astype(np.float32)})[0][0]
