"""Explanations at build time: the background the handler ships, what the manifest offers, and
whether compression changed the model's reasons.

- ``plan``: which methods the model gets (``[explain]``; docs/explanations.md) and, for tensor
  inputs, the background: ``explain.background`` held-out rows, stratified by label and drawn
  with ``explain.seed``, saved as ``background.npy`` and pinned in the manifest's ``files``.
- ``global_importance``: mean |attribution| over ``explain.importance_samples`` other held-out
  rows (texts), for the original model (its fp32 ONNX export) and the shipped one, with the
  handler's own estimators, background, samples and seed; their rank correlation (Spearman) is
  reported, and gated when ``validation.min_explanation_agreement`` is set.
  Tensor models explain the logit of each row's class as the original predicts it
  (classification, as the API does by default) or element 0 of the first output (raw); embeddings explain each text's cosine
  similarity to its own vector, i.e. which tokens carry the vector, per token string.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.reference import load_dataset
from slimserve.build.gate.validate import GateCheck, onnx_session
from slimserve.handler.datatypes import FLOAT_DATATYPES, V2_TO_NUMPY
from slimserve.handler.explain.games import cosine, patch_groups, tensor_game, token_game
from slimserve.handler.explain.shapley import KERNEL_SHAP, LEAVE_ONE_OUT, SHAPLEY_SAMPLING, estimate
from slimserve.handler.manifest import Explain, TensorSpec

BACKGROUND_FILE = "background.npy"
TENSOR_METHODS = [KERNEL_SHAP, SHAPLEY_SAMPLING, LEAVE_ONE_OUT]
TEXT_METHODS = [SHAPLEY_SAMPLING, KERNEL_SHAP, LEAVE_ONE_OUT]
DEFAULT_SAMPLES = {"tensor": 1024, "text": 256}
TOP_ROWS = 10
# The report explains held-out texts of at most this many tokens (special tokens included).
MAX_REPORT_TOKENS = 32


@dataclass(frozen=True)
class ExplainPlan:
    spec: Explain
    input_name: str  # the model input the attributions are over (tensor models) or input_ids (text)
    background: np.ndarray | None  # tensor models: the rows shipped in background.npy
    rows: np.ndarray | None  # tensor models: the held-out rows explained for the report
    texts: list[str] | None  # embeddings: the held-out texts explained for the report


def explained_output(task: str, scored_output: str, outputs: list[TensorSpec]) -> str | None:
    """The output an explanation attributes: the class scores for classification, else the model's
    first floating-point output (a converter's string or integer label has no attribution)."""
    if task == "classification":
        return scored_output
    return next((spec.name for spec in outputs if spec.datatype in FLOAT_DATATYPES), None)


def unsupported(
    config: BuildConfig, model_inputs: list[TensorSpec], model_outputs: list[TensorSpec], explained: str | None
) -> str | None:
    """Why this model (its ONNX inputs and outputs) gets no explanations, or None. ``explained``:
    the output explanations attribute (``explained_output``; None: the model has no float output)."""
    if explained is None:
        names = [f"{spec.name} ({spec.datatype})" for spec in model_outputs]
        return f"attributions need a floating-point output; the model's are {', '.join(names)}"
    if config.task == "embedding":
        if "attention_mask" not in {spec.name for spec in model_inputs}:
            return "token attributions need a model that takes attention_mask"
        return None
    if config.task == "classification" and "tokenizer" in config.task_options:
        return "text classifiers get no explanations yet; token attributions are offered for embeddings"
    if len(model_inputs) != 1 or model_inputs[0].datatype == "BYTES":
        return "Kernel SHAP here explains models with one numeric input tensor"
    return None


def choose_rows(count: int, labels: np.ndarray | None, wanted: int, seed: int) -> np.ndarray:
    """``wanted`` row indices, drawn with ``seed``; with one label per row, round-robin over the
    labels (stratified), so every class is in the background."""
    order = np.random.default_rng(seed).permutation(count)
    if labels is None or labels.ndim != 1 or len(labels) != count:
        return np.sort(order[:wanted])
    classes = [order[labels[order] == label] for label in np.unique(labels)]
    picked: list[int] = []
    for depth in range(max(len(members) for members in classes)):
        picked += [int(members[depth]) for members in classes if depth < len(members)]
    return np.sort(np.array(picked[:wanted], dtype=np.int64))


def plan(config: BuildConfig, model_inputs: list[TensorSpec]) -> ExplainPlan:
    settings = config.explain
    kind = "text" if config.task == "embedding" else "tensor"
    spec = Explain(
        methods=settings.methods or (TEXT_METHODS if kind == "text" else TENSOR_METHODS),
        samples=settings.samples or min(DEFAULT_SAMPLES[kind], settings.max_samples),
        max_samples=settings.max_samples,
        background=BACKGROUND_FILE if kind == "tensor" else None,
        image_shape=settings.image_shape,
        patch=settings.patch,
    )
    if kind == "text":
        from slimserve.build.pipeline.embedding import build_tokenizer, load_texts

        texts = load_texts(config, config.validation.data, "validation.data")
        # Sentences, not paragraphs: a 256-token text costs as much as ~16 short ones per coalition.
        # (The tokenizer pads a batch to its longest text: the attention mask counts the tokens.)
        lengths = [sum(encoding.attention_mask) for encoding in build_tokenizer(config).encode_batch(texts)]
        short = [index for index in np.random.default_rng(settings.seed).permutation(len(texts)) if lengths[index] <= MAX_REPORT_TOKENS]
        if len(short) < 2:
            raise ConfigError(
                f"explain: validation.data has {len(short)} text(s) of at most {MAX_REPORT_TOKENS} tokens; the report's "
                "global importance needs at least 2 (or set explain.enabled = false)"
            )
        return ExplainPlan(spec, "input_ids", None, None, [texts[index] for index in sorted(short[: settings.importance_samples])])
    spec_in = model_inputs[0]
    inputs, labels = load_dataset(config, config.validation.data, "validation.data")
    data = np.asarray(inputs[spec_in.name]).astype(V2_TO_NUMPY[spec_in.datatype])
    if settings.image_shape is not None and int(np.prod(settings.image_shape)) != int(np.prod(data.shape[1:])):
        raise ConfigError(
            f"explain.image_shape {settings.image_shape} has {int(np.prod(settings.image_shape))} elements; "
            f"input '{spec_in.name}' rows have {int(np.prod(data.shape[1:]))}"
        )
    chosen = choose_rows(len(data), labels if labels.ndim == 1 else None, settings.background, settings.seed)
    others = np.setdiff1d(np.random.default_rng(settings.seed + 1).permutation(len(data)), chosen, assume_unique=True)
    return ExplainPlan(spec, spec_in.name, data[chosen], data[np.sort(others[: settings.importance_samples])], None)


@dataclass
class ExplanationReport:
    kind: str  # "features", "image" or "tokens"
    names: list[str]
    original: np.ndarray  # mean |attribution| per name
    shipped: np.ndarray
    agreement: float  # Spearman rank correlation of the two
    explained: str
    rows: int
    method: str
    samples: int
    seed: int
    background_rows: int
    image_shape: list[int] | None = None

    def check(self, threshold: float) -> GateCheck:
        return GateCheck("explanation agreement (Spearman)", self.agreement, threshold, ">=")

    def to_manifest(self) -> dict[str, Any]:
        return {"explanation_agreement": self.agreement, "explanation_rows": self.rows}

    def markdown(self) -> str:
        background = f", a background of {self.background_rows} held-out rows" if self.background_rows else ""
        lines = [
            "## Explanations",
            "",
            f"Global importance: mean |attribution| of {self.explained} over {self.rows} held-out "
            f"{f'texts of up to {MAX_REPORT_TOKENS} tokens' if self.kind == 'tokens' else 'rows'} ({self.method}, {self.samples} coalitions{background}, "
            f"seed {self.seed}), for the original model (fp32 ONNX) and the shipped one.",
            "",
            f"**Rank correlation (Spearman) between the two: {self.agreement:.4f}** over {len(self.names)} "
            f"{'token strings' if self.kind == 'tokens' else 'features'}.",
            "",
            "| rank | " + ("token" if self.kind == "tokens" else "feature") + " | original | shipped |",
            "|---|---|---|---|",
        ]
        for rank, index in enumerate(np.argsort(-self.original, kind="stable")[:TOP_ROWS], start=1):
            lines.append(f"| {rank} | `{self.names[index]}` | {self.original[index]:.4g} | {self.shipped[index]:.4g} |")
        return "\n".join(lines) + "\n"

    def draw(self, original_axis: Any, shipped_axis: Any) -> None:
        """Heat maps for images (the explained row's last two axes), else the top names as bars."""
        if self.kind == "image" and self.image_shape is not None:
            images = [values.reshape(-1, *self.image_shape[-2:]).sum(axis=0) for values in (self.original, self.shipped)]
            scale = float(max(images[0].max(), images[1].max(), 1e-12))
            for axis, image, title in ((original_axis, images[0], "original"), (shipped_axis, images[1], "shipped")):
                axis.imshow(image, cmap="magma", vmin=0.0, vmax=scale)
                axis.set_xticks([])
                axis.set_yticks([])
                axis.set_title(f"mean |attribution|: {title}")
            shipped_axis.set_xlabel(f"Spearman {self.agreement:.3f}")
            return
        top = np.argsort(-self.original, kind="stable")[:TOP_ROWS][::-1]
        positions = np.arange(len(top))
        for axis, values, title, color in (
            (original_axis, self.original, "original", "#999999"),
            (shipped_axis, self.shipped, "shipped", "#2a7ab0"),
        ):
            axis.barh(positions, values[top], color=color)
            axis.set_yticks(positions, [self.names[index] for index in top], fontsize=7)
            axis.set_title(f"mean |attribution|: {title}")
        shipped_axis.set_xlabel(f"Spearman {self.agreement:.3f}")


def _spearman(first: np.ndarray, second: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(first) < 2 or np.ptp(first) == 0 or np.ptp(second) == 0:
        return 1.0 if np.array_equal(first, second) else 0.0
    return float(spearmanr(first, second).statistic)


def global_importance(
    config: BuildConfig, plan_: ExplainPlan, original: Path, shipped: Path, scored_output: str | None = None
) -> ExplanationReport:
    """``scored_output``: the output explained (the served class scores; a converter's classifier
    lists its predicted label first, so output 0 is not it). Default: the model's first output."""
    if plan_.texts is not None:
        return _token_importance(config, plan_, original, shipped)
    return _tensor_importance(config, plan_, original, shipped, scored_output)


def _tensor_importance(
    config: BuildConfig, plan_: ExplainPlan, original: Path, shipped: Path, scored_output: str | None
) -> ExplanationReport:
    assert plan_.background is not None and plan_.rows is not None
    spec, settings = plan_.spec, config.explain
    name = plan_.input_name
    groups = patch_groups(int(np.prod(plan_.rows.shape[1:])), spec.image_shape, spec.patch)

    def outputs(session: Any, rows: np.ndarray) -> np.ndarray:
        wanted = None if scored_output is None else [scored_output]
        return np.asarray(session.run(wanted, {name: rows})[0], dtype=np.float64).reshape(len(rows), -1)

    sessions = [onnx_session(original), onnx_session(shipped)]
    # The original's predicted class for classification (element 0 for raw models), for both.
    targets = outputs(sessions[0], plan_.rows).argmax(axis=1) if config.task == "classification" else np.zeros(len(plan_.rows), dtype=int)
    totals = [np.zeros(plan_.rows.shape[1:], dtype=np.float64) for _ in sessions]
    for row, target in zip(plan_.rows, targets):
        for session, total in zip(sessions, totals):
            score = lambda rows, session=session, target=target: outputs(session, rows)[:, target]  # noqa: E731
            game = tensor_game(row, plan_.background, groups, score, float(score(row[None])[0]))
            result = estimate(game.game, spec.methods[0], samples=spec.samples, seed=settings.seed, exact_max_players=spec.exact_max_players)
            total += np.abs(game.per_feature(result.values).reshape(row.shape))
    means = [total.reshape(-1) / len(plan_.rows) for total in totals]
    explained = "each row's predicted-class logit" if config.task == "classification" else "output element 0"
    return ExplanationReport(
        kind="image" if spec.image_shape is not None else "features",
        names=[f"{name}[{index}]" for index in range(means[0].size)],
        original=means[0], shipped=means[1], agreement=_spearman(means[0], means[1]), explained=explained,
        rows=len(plan_.rows), method=spec.methods[0], samples=spec.samples, seed=settings.seed,
        background_rows=len(plan_.background), image_shape=spec.image_shape,
    )


def _token_importance(config: BuildConfig, plan_: ExplainPlan, original: Path, shipped: Path) -> ExplanationReport:
    from slimserve.build.pipeline.embedding import build_tokenizer
    from slimserve.handler.tasks.embedding import TokenFeeds

    assert plan_.texts is not None
    spec, settings = plan_.spec, config.explain
    tokenizer = build_tokenizer(config)
    per_token: list[dict[str, list[float]]] = [{}, {}]
    for session, store in zip((onnx_session(original), onnx_session(shipped)), per_token):
        feeds_for = TokenFeeds.for_session(tokenizer, session)
        embed = lambda batch, session=session: session.run(None, batch)[0]  # noqa: E731
        for text in plan_.texts:
            feeds = feeds_for([text])
            encoding = tokenizer.encode_batch([text])[0]
            special = np.array(encoding.special_tokens_mask, dtype=bool)
            vector = embed(feeds)[0]
            game = token_game(feeds, special, embed, vector, float(cosine(vector[None], vector)[0]))
            result = estimate(game.game, spec.methods[0], samples=spec.samples, seed=settings.seed, exact_max_players=spec.exact_max_players)
            for position, value in zip(game.positions, result.values):
                store.setdefault(encoding.tokens[position], []).append(abs(float(value)))
    names = sorted(per_token[0])
    means = [np.array([np.mean(store[token]) for token in names]) for store in per_token]
    return ExplanationReport(
        kind="tokens", names=names, original=means[0], shipped=means[1], agreement=_spearman(means[0], means[1]),
        explained="each text's cosine similarity to its own vector", rows=len(plan_.texts), method=spec.methods[0],
        samples=spec.samples, seed=settings.seed, background_rows=0,
    )
