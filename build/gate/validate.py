"""The accuracy gate: prove the compressed model still agrees with the original.

Both models run on held-out data the build never trained on. The gate is a list of checks,
each a measured value against a threshold; the build refuses to bundle when any check fails and
says which one missed by how much.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slimserve.build.gate.margin import (
    BoundSettings,
    binomial_lower_bound,
    binomial_upper_bound,
    bootstrap_quantile_lower_bound,
)

Predictor = Callable[[dict[str, np.ndarray]], np.ndarray]
# The low quantile of per-text cosine whose bootstrap lower bound is reported (margin.py says
# why not the minimum): the 1st percentile, i.e. the score 99 % of texts like these exceed.
DEFAULT_COSINE_QUANTILE = 0.01
# What a failed gate advises, by the step that lost the accuracy (GateResult.lost_in; the
# compression stage sets "prune" or "distill" when the model it compressed already failed).
LOSS_ADVICE = {
    "compress": 'choose a gentler compression (per_channel = true, nodes_to_exclude, fp16, or method = "none")',
    "prune": (
        "the pruned model already misses the gate before compression, so pruning lost it: prune less "
        "(a lower prune.sparsity), exclude sensitive layers (prune.exclude) or fine-tune after pruning "
        "(prune.finetune)"
    ),
    "distill": (
        "the distilled student already misses the gate before compression, so distillation lost it: train "
        "it longer (distill.epochs), give it more capacity (distill.student) or tune distill.temperature / "
        "distill.alpha"
    ),
}
# Score differences below this are float rounding (fp32 vs fp32), not worth a word.
SCORE_NOTE_ABOVE = 1e-3


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float
    threshold: float
    comparison: str  # ">=" or "<="

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.comparison == ">=" else self.value <= self.threshold

    def explain(self) -> str:
        verdict = "ok" if self.passed else f"MISSED by {abs(self.value - self.threshold):.4g}"
        return f"{self.name} = {self.value:.6g} (must be {self.comparison} {self.threshold:.6g}): {verdict}"


@dataclass
class GateResult:
    metric: str
    reference: float
    candidate: float
    tolerance: float
    samples: int
    checks: list[GateCheck]
    extra: dict[str, Any] = field(default_factory=dict)
    lost_in: str = "compress"  # the step a failure is attributed to: a key of LOSS_ADVICE
    output: str | None = None  # the output scored: what the API serves
    # The candidate's answers the verdict rests on (top-1 labels, vectors): the build checks the
    # bundled model answers the same through the handler. Not written anywhere.
    predictions: Any = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    def explain(self) -> str:
        if self.passed:
            return f"accuracy gate passed on {self.samples} held-out samples: " + "; ".join(
                check.explain() for check in self.checks
            ) + self._score_note()
        missed = "; ".join(check.explain() for check in self.failures)
        return (
            f"accuracy gate FAILED on {self.samples} held-out samples: {missed}. "
            f"The original model scores {self.metric} {self.reference:.4f}, the compressed one "
            f"{self.candidate:.4f}. Nothing was bundled. Loosen validation.tolerance only if that "
            f"loss is acceptable, or {LOSS_ADVICE[self.lost_in]}."
        )

    def _score_note(self) -> str:
        """Labels can all agree while scores move (int8): say by how much when nothing bounds it."""
        difference = self.extra.get("max_abs_output_diff")
        bounded = any(check.name == "max score difference" for check in self.checks)
        if difference is None or bounded or difference <= SCORE_NOTE_ABOVE:
            return ""
        return (
            f"; the shipped model's scores differ from the original's by up to {difference:.3g} "
            "(validation.max_score_diff bounds that)"
        )

    def to_manifest(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "reference": self.reference,
            "candidate": self.candidate,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "samples": self.samples,
            "output": self.output,
            "extra": {
                **self.extra,
                "checks": [
                    {"name": c.name, "value": c.value, "threshold": c.threshold, "comparison": c.comparison, "passed": c.passed}
                    for c in self.checks
                ],
            },
        }


def batched(predict: Predictor, inputs: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    count = len(next(iter(inputs.values())))
    parts = [
        predict({name: array[start : start + batch_size] for name, array in inputs.items()})
        for start in range(0, count, batch_size)
    ]
    return np.concatenate(parts, axis=0)


def onnx_session(model_path: Path, threads: int = 1, serving: Mapping[str, Any] | None = None) -> Any:
    """An onnxruntime CPU session opened as the handler opens it (handler/model.py
    ``session_options``) with ``threads`` intra-op threads and the options ``model_path`` is
    served with (``serving``, default its ``portability.serving_options``: what the manifest
    records), so the gate measures the arithmetic that will run."""
    import onnxruntime as ort

    from slimserve.build.gate.portability import serving_options
    from slimserve.handler.model import session_options

    options = session_options(threads, serving if serving is not None else serving_options(model_path))
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_predictor(model_path: Path, output_name: str | None = None, threads: int = 1) -> Predictor:
    session = onnx_session(model_path, threads)
    names = [output_name] if output_name else [session.get_outputs()[0].name]

    def predict(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(names, feeds)[0]

    return predict


def torch_predictor(model: Any, input_names: list[str]) -> Predictor:
    outputs = torch_outputs(model, input_names)

    def predict(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return outputs(feeds)[0]

    return predict


def torch_outputs(model: Any, input_names: list[str]) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """Every output of a PyTorch module (a tensor, or a tuple/list of them), in order."""
    import torch

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            output = model(*(torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in input_names))
        return [tensor.numpy() for tensor in (output if isinstance(output, (tuple, list)) else [output])]

    return run


def label_gate(
    reference_predictions: np.ndarray,
    candidate_predictions: np.ndarray,
    expected: np.ndarray,
    tolerance: float,
    min_agreement: float | None = None,
    *,
    output_difference: float,
    max_output_difference: float | None = None,
    output: str | None = None,
    accuracy_lower_bound: float | None = None,
    agreement_lower_bound: float | None = None,
    bounds: BoundSettings = BoundSettings(),
) -> GateResult:
    """Accuracy of both models' predictions (served labels, or class indices) against the
    held-out labels; the candidate may lose at most ``tolerance`` (a fraction: 0.01 = 1 point).
    ``output_difference``: the largest absolute difference of the scored outputs (reported, and
    checked against ``max_output_difference`` when given).

    Also reported: exact binomial lower bounds (``bounds.confidence``) on the candidate's
    accuracy and on its top-1 agreement with the original, i.e. what they are worth for samples
    beyond the held-out set; ``accuracy_lower_bound`` / ``agreement_lower_bound`` make them checks."""
    samples = int(len(expected))
    correct = int(np.sum(candidate_predictions == expected))
    agreeing = int(np.sum(reference_predictions == candidate_predictions))
    reference_accuracy = float(np.mean(reference_predictions == expected))
    candidate_accuracy = correct / samples
    agreement = agreeing / samples
    accuracy_bound = binomial_lower_bound(correct, samples, bounds.confidence)
    agreement_bound = binomial_lower_bound(agreeing, samples, bounds.confidence)
    checks = [GateCheck("accuracy loss", reference_accuracy - candidate_accuracy, tolerance, "<=")]
    if min_agreement is not None:
        checks.append(GateCheck("top-1 agreement", agreement, min_agreement, ">="))
    if max_output_difference is not None:
        checks.append(GateCheck("max score difference", output_difference, max_output_difference, "<="))
    level = f"{bounds.confidence:.0%}"
    if accuracy_lower_bound is not None:
        checks.append(GateCheck(f"accuracy, {level} lower bound", accuracy_bound, accuracy_lower_bound, ">="))
    if agreement_lower_bound is not None:
        checks.append(GateCheck(f"top-1 agreement, {level} lower bound", agreement_bound, agreement_lower_bound, ">="))
    return GateResult(
        metric="accuracy",
        reference=reference_accuracy,
        candidate=candidate_accuracy,
        tolerance=tolerance,
        samples=samples,
        checks=checks,
        extra={
            "top1_agreement": agreement,
            "max_abs_output_diff": output_difference,
            "accuracy_lower_bound": accuracy_bound,
            "agreement_lower_bound": agreement_bound,
            "bounds": bounds.describe(),
        },
        output=output,
        predictions=candidate_predictions,
    )


def cosine_rows(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    reference = reference.astype(np.float64).reshape(len(reference), -1)
    candidate = candidate.astype(np.float64).reshape(len(candidate), -1)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    return (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-12)


def nearest_neighbour_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of samples whose nearest other sample is the same under both models."""

    def neighbours(vectors: np.ndarray) -> np.ndarray:
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(axis=1)

    return float((neighbours(reference.astype(np.float64)) == neighbours(candidate.astype(np.float64))).mean())


class CosineGateResult(GateResult):
    """A cosine gate's verdict; its explanation names the embedding knobs, not ``tolerance``."""

    def explain(self) -> str:
        bound = self.extra.get("bounds", {})
        tail = f"p{100 * bound.get('quantile', DEFAULT_COSINE_QUANTILE):g}"
        level = f"{bound.get('confidence', 0.95):.0%}"
        runs = "; ".join(
            f"{label}: min {self.extra[f'min_cosine_{key}']:.4f}, mean {self.extra[f'mean_cosine_{key}']:.4f}, "
            f"nearest-neighbour agreement {self.extra[f'nn_agreement_{key}']:.1%}"
            + (
                f", {tail} >= {self.extra[f'quantile_cosine_lower_{key}']:.4f} ({level} lower bound)"
                if f"quantile_cosine_lower_{key}" in self.extra
                else ""
            )
            for label, key in ((label, label.replace(" ", "_")) for label in self.extra.get("runs", []))
        )
        if self.passed:
            return f"cosine gate passed on {self.samples} held-out texts ({runs})"
        missed = "; ".join(check.explain() for check in self.failures)
        return (
            f"cosine gate FAILED on {self.samples} held-out texts: {missed}. Cosine similarity between the "
            f"original model's and the compressed model's vectors: {runs}. Nothing was bundled. Lower "
            "validation.min_cosine / validation.mean_cosine only if vectors that far from the original are "
            f"acceptable for your search or clustering, or {LOSS_ADVICE[self.lost_in]}."
        )


def cosine_gate(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    min_cosine: float,
    mean_cosine: float,
    extra_runs: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    label: str = "single",
    quantile: float = DEFAULT_COSINE_QUANTILE,
    quantile_lower_bound: float | None = None,
    bounds: BoundSettings = BoundSettings(),
) -> GateResult:
    """Embeddings: per-sample cosine between original and compressed vectors, gated on its
    minimum and mean; nearest-neighbour agreement (does each sample's closest other sample stay
    the same?) is reported. ``extra_runs`` adds the same checks for other evaluation modes
    (e.g. ``{"batch 32": (reference, padded_batch_vectors)}``) under their name; ``label``
    names the main run.

    The margin, per run: the ``quantile`` of per-sample cosine and its bootstrap lower bound
    (margin.py: a bound on the minimum would be the minimum itself), a check when
    ``quantile_lower_bound`` is set; and an exact upper bound on the share of samples like these
    that fall below ``min_cosine``."""
    runs = {label: (reference, candidate), **(extra_runs or {})}
    checks: list[GateCheck] = []
    extra: dict[str, Any] = {"runs": list(runs), "bounds": {**bounds.describe(), "quantile": quantile}}
    tail = f"p{100 * quantile:g}"
    all_cos = []
    for name, (ref, cand) in runs.items():
        if ref.shape != cand.shape:
            raise ValueError(f"cosine gate ({name}): reference shape {ref.shape} != candidate shape {cand.shape}")
        cos = cosine_rows(ref, cand)
        all_cos.append(cos)
        suffix = f" ({name})" if len(runs) > 1 else ""
        checks.append(GateCheck(f"min cosine{suffix}", float(cos.min()), min_cosine, ">="))
        checks.append(GateCheck(f"mean cosine{suffix}", float(cos.mean()), mean_cosine, ">="))
        key = name.replace(" ", "_")
        extra[f"min_cosine_{key}"] = float(cos.min())
        extra[f"mean_cosine_{key}"] = float(cos.mean())
        extra[f"nn_agreement_{key}"] = nearest_neighbour_agreement(ref, cand)
        lower = bootstrap_quantile_lower_bound(cos, quantile, bounds)
        extra[f"quantile_cosine_{key}"] = float(np.quantile(cos, quantile))
        extra[f"quantile_cosine_lower_{key}"] = lower
        extra[f"below_min_cosine_upper_{key}"] = binomial_upper_bound(int((cos < min_cosine).sum()), len(cos), bounds.confidence)
        if quantile_lower_bound is not None:
            checks.append(
                GateCheck(f"cosine {tail}, {bounds.confidence:.0%} lower bound{suffix}", lower, quantile_lower_bound, ">=")
            )
    mean_all = float(np.concatenate(all_cos).mean())
    return CosineGateResult(
        metric="cosine",
        reference=1.0,
        candidate=mean_all,
        tolerance=1.0 - mean_cosine,
        samples=int(len(reference)),
        checks=checks,
        extra=extra,
    )
