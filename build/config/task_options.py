"""``[task_options]``: one table per task. The build copies them (plus what it detects) into the
manifest, where the handler's task adapter reads them; ``schema.BuildConfig`` validates the
table of its task and the loader reports keys the task does not take."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RawOptions(_Options):
    """task = "raw": tensors in, the model's own tensors out. No options."""


class ClassificationOptions(_Options):
    """task = "classification": the model's outputs plus ``label`` and ``score`` (top-k)."""

    top_k: int = Field(1, ge=1, description="labels and scores per row when a request does not say (parameters.top_k)")
    output: str | None = Field(
        None,
        description="the output holding the class scores (logits or probabilities), when the model has more "
        "than one float [batch, classes] output",
    )
    scores: Literal["logits", "probabilities"] | None = Field(
        None,
        description="what that output holds: logits (score = softmax) or probabilities (score = the value as "
        "is); default: detected from the graph (a final Softmax, a scikit-learn converter's output), else logits",
    )
    max_tokens: int | None = Field(
        None,
        ge=2,
        description="text classifiers (source.huggingface): texts are cut at min(this, runtime.limits.max_tokens) "
        "tokens (default: the folder's model_max_length)",
    )


class EmbeddingOptions(_Options):
    """task = "embedding": texts in, one vector per text out; the handler tokenizes."""

    tokenizer: str = Field("tokenizer.json", description="file name of the tokenizer beside the model (model/ in lambda.zip)")
    tokenizer_source: str | None = Field(
        None,
        description="where the build copies the tokenizer from: a path, or 'package:<import name>/<path>' "
        "(default: task_options.tokenizer in the project folder)",
    )
    max_tokens: int | None = Field(
        None, ge=2, description="the model's sequence length; texts are cut at min(this, runtime.limits.max_tokens)"
    )
    pooling: Literal["mean", "cls", "max"] | None = Field(
        None,
        description="source.huggingface, a plain encoder folder (no modules.json): how token vectors become one "
        "vector per text (required there; a sentence-transformers folder's modules.json decides)",
    )
    normalize: bool | None = Field(
        None, description="source.huggingface, a plain encoder folder: L2-normalise the pooled vector (default true)"
    )


# task -> its [task_options] table: the one place a task's options are declared.
TASK_OPTIONS: dict[str, type[BaseModel]] = {
    "raw": RawOptions,
    "classification": ClassificationOptions,
    "embedding": EmbeddingOptions,
}


def task_option_problems(task: str, options: dict[str, Any]) -> list[str]:
    """Type errors in ``task_options`` for ``task`` ("task_options.<key>: message"); unknown keys
    are reported by the loader with a suggestion."""
    model = TASK_OPTIONS.get(task)
    if model is None:
        return []
    known = {key: value for key, value in options.items() if key in model.model_fields}
    try:
        model.model_validate(known)
    except ValidationError as exc:
        return [f"task_options.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()]
    return []
