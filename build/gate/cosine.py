"""``validation.metric = "cosine"``: the embedding task's gate.

Cosine similarity between the original model's vectors and the candidate's over the held-out
texts, the candidate run one text at a time (no padding) and in padded batches of
``validation.batch_size``; both runs must reach ``validation.min_cosine`` (every text) and
``validation.mean_cosine`` (on average). Nearest-neighbour agreement is reported. The texts
and the tokenizer (the handler's own code) come from ``slimserve.build.pipeline.embedding``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.gate.reference import Reference, reference_predictor
from slimserve.build.gate.validate import GateResult, cosine_gate, cosine_rows, onnx_session
from slimserve.build.pipeline.embedding import TEXT_INPUT, build_tokenizer, load_texts
from slimserve.handler.tasks.embedding import TokenFeeds, max_tokens_for


@contextmanager
def _single_threaded_torch(active: bool) -> Iterator[None]:
    """PyTorch on one thread while the reference runs: these are small matrices, and on a busy
    2-core machine torch's default thread pool made the reference 4-15x slower (measured)."""
    if not active:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def embed_onnx(path: Path, tokenizer: Any, texts: list[str], batch_size: int) -> np.ndarray:
    """Vectors from an ONNX embedding model, ``batch_size`` texts per run (padded to the longest)."""
    session = onnx_session(path)
    feeds = TokenFeeds.for_session(tokenizer, session)
    output = session.get_outputs()[0].name
    parts = [session.run([output], feeds(texts[start : start + batch_size]))[0] for start in range(0, len(texts), batch_size)]
    return np.concatenate(parts, axis=0)


def embed_unpadded(predict: Callable[[dict[str, np.ndarray]], np.ndarray], feeds: TokenFeeds, texts: list[str]) -> np.ndarray:
    """Every text's vector as if embedded alone (no padding), for an fp32 model: texts of the
    same token count run together, which pads nothing and saves most of the per-call cost
    (the PyTorch reference is ~10x slower one text at a time). Not for int8 candidates:
    dynamic quantization scales activations per batch, so they must really run one by one."""
    lengths = [sum(encoding.attention_mask) for encoding in feeds.tokenizer.encode_batch(texts)]
    vectors: list[np.ndarray | None] = [None] * len(texts)
    for length in sorted(set(lengths)):
        members = [index for index, value in enumerate(lengths) if value == length]
        for start in range(0, len(members), 64):
            chunk = members[start : start + 64]
            batch = feeds([texts[index] for index in chunk])
            if "attention_mask" in batch and not batch["attention_mask"].all():
                raise RuntimeError("texts of equal token count were padded; check the tokenizer's padding")
            for index, vector in zip(chunk, predict(batch)):
                vectors[index] = vector
    return np.stack(vectors).astype(np.float32)


class CosineEvaluator:
    """The original model embeds every held-out text once, alone (no padding): the PyTorch
    module when the source is PyTorch, else the fp32 ONNX file. ``gate`` embeds them with the
    candidate alone and in padded batches and compares vector by vector."""

    metric: ClassVar[str] = "cosine"
    # The build's serve check: a served vector this close to the gated one is the same answer
    # (the handler's session options differ from the gate's by float rounding only).
    SAME_ANSWER_COSINE = 0.999

    def __init__(self, config: BuildConfig, reference: Reference) -> None:
        self.config = config
        self.output = reference.served.scored_output if reference.served is not None else None
        self.texts = load_texts(config, config.validation.data, "validation.data")
        self.tokenizer = build_tokenizer(config)
        self.max_tokens = max_tokens_for(config.task_options, config.runtime.limits)
        feeds = TokenFeeds(self.tokenizer, {name: np.dtype(np.int64) for name in reference.input_names})
        with _single_threaded_torch(reference.torch_model is not None):
            self.reference_vectors = embed_unpadded(reference_predictor(reference), feeds, self.texts)
        self.truncated = sum(bool(encoding.overflowing) for encoding in self.tokenizer.encode_batch(self.texts))
        self.export_min_cosine: float | None = None
        if reference.torch_model is not None:
            session = onnx_session(reference.fp32_path)
            exported = embed_unpadded(
                lambda batch: session.run(None, batch)[0], TokenFeeds.for_session(self.tokenizer, session), self.texts
            )
            self.export_min_cosine = float(cosine_rows(self.reference_vectors, exported).min())
            self.export_max_abs_diff = float(np.max(np.abs(exported.astype(np.float64) - self.reference_vectors)))

    def gate(self, candidate: Path) -> GateResult:
        return self.verdict(self.candidate_vectors(candidate))

    def candidate_vectors(self, candidate: Path) -> dict[str, np.ndarray]:
        """The candidate's vectors per run: ``single`` (one text per call, as a client sending
        one sentence gets) and ``batch N`` (padded batches of validation.batch_size)."""
        batch_size = self.config.validation.batch_size
        return {
            "single": embed_onnx(candidate, self.tokenizer, self.texts, batch_size=1),
            f"batch {batch_size}": embed_onnx(candidate, self.tokenizer, self.texts, batch_size=batch_size),
        }

    def verdict(self, runs: dict[str, np.ndarray]) -> GateResult:
        """Score the candidate's vectors against the original's with the configured thresholds."""
        validation = self.config.validation
        (label, first), *others = runs.items()
        result = cosine_gate(
            self.reference_vectors,
            first,
            min_cosine=validation.min_cosine,
            mean_cosine=validation.mean_cosine,
            extra_runs={name: (self.reference_vectors, vectors) for name, vectors in others},
            label=label,
            quantile=validation.cosine_quantile,
            quantile_lower_bound=validation.cosine_lower_bound,
        )
        result.output = self.output
        result.predictions = runs.get(f"batch {validation.batch_size}", first)  # the batches the handler answers
        result.extra["max_tokens"] = self.max_tokens
        result.extra["truncated_texts"] = int(self.truncated)
        if self.export_min_cosine is not None:
            # How faithful the fp32 ONNX export is to PyTorch, before any compression.
            result.extra["export_min_cosine"] = self.export_min_cosine
            result.extra["export_max_abs_diff"] = self.export_max_abs_diff
        return result

    def request_inputs(self) -> dict[str, np.ndarray]:
        """The held-out texts as the API takes them (the build's serve check)."""
        return {TEXT_INPUT: np.array(self.texts, dtype=object)}

    def predictions(self, answers: dict[str, np.ndarray]) -> np.ndarray:
        name = self.output or next(iter(answers))
        return answers[name].astype(np.float32)

    def disagreements(self, served: np.ndarray, gated: np.ndarray) -> int:
        return int(np.sum(cosine_rows(gated, served) < self.SAME_ANSWER_COSINE))
