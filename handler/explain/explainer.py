"""``POST .../explain`` for one loaded model: which game its input makes, what output is
explained, the budget check, and the response tensors.

What is explained (``parameters.target``, ``parameters.output``):
- classification: one class's logit (the ``logits`` output; ``output = "score"`` explains the
  served ``score`` instead, the softmax probability); ``target`` is a class index or label,
  default the predicted class;
- raw: one element of the model's first output row (``target`` its flat index, default 0);
- embedding: the cosine similarity between the input text's vector and ``target``'s (a text,
  required).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slimserve.handler.datatypes import FLOAT_DATATYPES
from slimserve.handler.errors import BadRequest, ModelLoadError, Unprocessable, clip
from slimserve.handler.explain.budget import CostModel, calibrate, check_budget, remaining_seconds
from slimserve.handler.explain.games import (
    RowScorer,
    cosine,
    patch_groups,
    tensor_game,
    token_game,
)
from slimserve.handler.explain.params import ExplainParameters, parse_parameters
from slimserve.handler.explain.shapley import (
    KERNEL_SHAP,
    SHAPLEY_SAMPLING,
    Attribution,
    Game,
    estimate,
    planned_coalitions,
)
from slimserve.handler.model import LoadedModel
from slimserve.handler.tasks.classification import probabilities

ATTRIBUTIONS = "attributions"
BASE_VALUE = "base_value"
TOKENS = "tokens"


@dataclass(frozen=True)
class Explanation:
    outputs: dict[str, np.ndarray]  # attributions, base_value (and tokens for text)
    parameters: dict[str, Any]


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Explainer:
    """Built on the first explain request (never at init: cold start does not pay for it)."""

    def __init__(self, model: LoadedModel, task: Any) -> None:
        manifest = model.manifest
        if manifest.explain is None:
            raise ModelLoadError("the manifest declares no explanations")
        self.model = model
        self.task = task
        self.spec = manifest.explain
        self.timeout_s = float(manifest.runtime.timeout_s)
        self.limits = manifest.runtime.limits
        self.text = manifest.task == "embedding"
        self._cost: dict[int, CostModel] = {}  # by elements per coalition: one calibration per input size
        if self.text:
            if "attention_mask" not in task.feeds.inputs:
                raise ModelLoadError("token attributions need a model that takes attention_mask")
            return
        if len(manifest.inputs) != 1 or manifest.inputs[0].datatype == "BYTES":
            raise ModelLoadError("Kernel SHAP explains models with one numeric input tensor")
        self.input = manifest.inputs[0]
        if self.spec.background is None:
            raise ModelLoadError("the manifest names no explanation background file")
        self.background = np.load(model.model_dir / self.spec.background, allow_pickle=False)
        row_shape = list(self.background.shape[1:])
        declared = self.input.shape[1:]
        if len(row_shape) != len(declared) or any(want not in (-1, got) for got, want in zip(row_shape, declared)):
            raise ModelLoadError(f"the explanation background has rows of shape {row_shape}; the input is {declared}")
        self.groups = patch_groups(int(np.prod(row_shape)), self.spec.image_shape, self.spec.patch)

    # ------------------------------------------------------------------ request

    def explain(
        self, tensors: dict[str, np.ndarray], parameters: dict[str, Any], produced: dict[str, np.ndarray], context: Any
    ) -> Explanation:
        request = parse_parameters(parameters, self.spec)
        if self.text:
            return self._explain_text(tensors, request, produced, context)
        return self._explain_tensor(tensors, request, parameters, produced, context)

    def _one_instance(self, name: str, array: np.ndarray) -> None:
        if array.ndim == 0 or array.shape[0] != 1:
            batch = array.shape[0] if array.ndim else 0
            raise BadRequest(f"explain takes one instance per request; input '{name}' has batch size {batch}")

    def _checked(self, game: Game, request: ExplainParameters, *, rows_per_coalition: int, coalition_elements: int, context: Any) -> None:
        """Price the request before running it: the coalitions it plans, at the cost of this
        game's own value function (calibrated once per input size), against the time left."""
        coalitions = planned_coalitions(request.method, game.players, request.samples, self.spec.exact_max_players)
        if coalitions == 0:
            return
        cost = self._cost.get(coalition_elements)
        if cost is None:
            present = lambda count: game.value(np.ones((count, game.players), dtype=bool))  # noqa: E731
            cost = self._cost[coalition_elements] = calibrate(present, coalition_elements)
        check_budget(
            evaluations=coalitions * rows_per_coalition,
            estimate_s=cost.estimate(coalitions, coalition_elements),
            remaining_s=remaining_seconds(context, self.timeout_s),
            timeout_s=self.timeout_s,
            advice=self._advice(request, game.players),
        )

    def _run(self, game: Game, request: ExplainParameters) -> Attribution:
        return estimate(
            game, request.method, samples=request.samples, seed=request.seed, exact_max_players=self.spec.exact_max_players
        )

    def _advice(self, request: ExplainParameters, players: int) -> str:
        if request.method == KERNEL_SHAP and players <= self.spec.exact_max_players:
            return (
                f"exact Kernel SHAP over {players} players enumerates every coalition: choose parameters.method "
                f"{[method for method in self.spec.methods if method != KERNEL_SHAP]} instead"
            )
        if request.method == KERNEL_SHAP or request.method == SHAPLEY_SAMPLING:
            return f"lower parameters.samples (now {request.samples})"
        return "send a shorter input"

    # ------------------------------------------------------------------ tensors

    def _scorer(self, parameters: dict[str, Any], produced: dict[str, np.ndarray]) -> tuple[RowScorer, float, dict[str, Any]]:
        """The explained output as a function of input rows, its served value, and its description."""
        name = self.input.name
        request_target = parameters.get("target")
        if self.model.manifest.task == "classification":
            scores = self.task.scores_name
            kind = self.task.kind  # what the scores output holds: logits or probabilities
            labels = [str(label) for label in self.task.labels.tolist()]
            target = _class_target(request_target, labels, int(np.argmax(produced[scores][0])))
            # The model's scores output by default (for logits: near-linear in the input, so
            # sampled estimates converge far faster than on a saturated probability); "score"
            # explains the served score, the class probability.
            explained = parameters.get("output", scores)
            if explained not in (scores, "score"):
                raise BadRequest(
                    f"parameters.output must be '{scores}' (the class's {kind[:-1]}, the default) or 'score' (the "
                    f"served score), got {clip(repr(explained))}"
                )
            probability = explained == "score"

            def score_rows(rows: np.ndarray) -> np.ndarray:
                out = self.model.run({name: rows}, [scores])[scores]
                return (probabilities(out, kind) if probability else out)[:, target]

            served = probabilities(produced[scores], kind) if probability else produced[scores]
            what = (
                f"score of class {target} ({'softmax probability' if kind == 'logits' else 'the model probability'})"
                if probability
                else f"{kind[:-1]} of class {target} (output '{scores}')"
            )
            return score_rows, float(served[0, target]), {"target": target, "label": labels[target], "explained": what}
        # The first floating-point output (the build offers explanations only if there is one):
        # a converter's string or integer label output has no attribution.
        output = next(spec.name for spec in self.model.manifest.outputs if spec.datatype in FLOAT_DATATYPES)
        row = np.asarray(produced[output])[0].reshape(-1)
        target = 0 if request_target is None else request_target
        if not _integer(target) or not 0 <= target < row.size:
            raise BadRequest(
                f"parameters.target must be an integer from 0 to {row.size - 1} (an element of output '{output}'), "
                f"got {clip(repr(request_target))}"
            )

        def output_rows(rows: np.ndarray) -> np.ndarray:
            return self.model.run({name: rows}, [output])[output].reshape(len(rows), -1)[:, target]

        return output_rows, float(row[target]), {"target": target, "explained": f"output '{output}' element {target}"}

    def _explain_tensor(
        self, tensors: dict[str, np.ndarray], request: ExplainParameters, parameters: dict[str, Any],
        produced: dict[str, np.ndarray], context: Any,
    ) -> Explanation:
        array = tensors[self.input.name]
        self._one_instance(self.input.name, array)
        if list(array.shape[1:]) != list(self.background.shape[1:]):
            raise BadRequest(
                f"input '{self.input.name}' rows have shape {list(array.shape[1:])}; explanations of this model take "
                f"rows of shape {list(self.background.shape[1:])} (its background's)"
            )
        score, full, described = self._scorer(parameters, produced)
        row = array[0]
        k = len(self.background)
        tensor = tensor_game(row, self.background, self.groups, score, full)
        self._checked(tensor.game, request, rows_per_coalition=k, coalition_elements=k * row.size, context=context)
        result = self._run(tensor.game, request)
        attributions = tensor.per_feature(result.values).reshape(array.shape)
        return _explanation(attributions, tensor.game, result, request, described, evaluations=(result.coalitions + 1) * k)

    # ------------------------------------------------------------------ text

    def _explain_text(
        self, tensors: dict[str, np.ndarray], request: ExplainParameters, produced: dict[str, np.ndarray], context: Any
    ) -> Explanation:
        name = self.task.input_name
        self._one_instance(name, tensors[name])
        text = self.task.texts(tensors[name])[0]
        target_text = _text_target(request.target, self.limits.max_text_chars)
        feeds = self.task.feeds([text])
        encoding = self.task.tokenizer.encode_batch([text])[0]
        special = np.array(encoding.special_tokens_mask, dtype=bool)
        length = feeds["input_ids"].shape[1]
        output = self.task.output_name

        def embed(batch: dict[str, np.ndarray]) -> np.ndarray:
            return self.model.run(batch, [output])[output]

        target_vector = self.task.embed([target_text])[0]
        full = float(cosine(np.asarray(produced[output])[:1], target_vector)[0])
        game = token_game(feeds, special, embed, target_vector, full)
        self._checked(game.game, request, rows_per_coalition=1, coalition_elements=length, context=context)
        result = self._run(game.game, request)
        tokens = np.array([[encoding.tokens[position] for position in game.positions]], dtype=object)
        described = {"explained": "cosine similarity to parameters.target"}
        explanation = _explanation(
            result.values.reshape(1, -1), game.game, result, request, described, evaluations=result.coalitions + 2
        )
        explanation.outputs[TOKENS] = tokens
        return explanation


def _class_target(value: Any, labels: list[str], predicted: int) -> int:
    if value is None:
        return predicted
    if _integer(value) and 0 <= value < len(labels):
        return int(value)
    if isinstance(value, str) and value in labels:
        return labels.index(value)
    raise BadRequest(
        f"parameters.target must be a class index from 0 to {len(labels) - 1} or one of the labels "
        f"{clip(labels, 200)}, got {clip(repr(value))}"
    )


def _text_target(value: Any, max_chars: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(
            "parameters.target must be the text to compare with (a string): an embedding's explanation attributes "
            f"the cosine similarity between the input text and parameters.target, got {clip(repr(value))}"
        )
    if len(value) > max_chars:
        raise BadRequest(f"parameters.target has {len(value)} characters, more than the limit of {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("parameters.target is not valid Unicode (it contains a lone surrogate)") from None
    return value


def _explanation(
    attributions: np.ndarray, game: Game, result: Attribution, request: ExplainParameters, described: dict[str, Any],
    *, evaluations: int,
) -> Explanation:
    residual = abs(game.empty + float(result.values.sum()) - game.full)
    numbers = [game.full, game.empty, residual]
    if not (np.isfinite(attributions).all() and np.isfinite(numbers).all()):
        raise Unprocessable("the model's outputs are not finite for this input, so it cannot be explained")
    parameters = {
        "method": request.method,
        "exact": result.exact,
        **described,
        "output_value": game.full,
        "base_value": game.empty,
        "residual": residual,
        "players": game.players,
        "samples": request.samples,
        "seed": request.seed,
        "model_evaluations": evaluations,
    }
    outputs = {
        ATTRIBUTIONS: attributions.astype(np.float32),
        BASE_VALUE: np.array([game.empty], dtype=np.float32),
    }
    return Explanation(outputs, parameters)
