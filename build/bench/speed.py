"""Section 1, model speed: PyTorch eager fp32, ONNX Runtime fp32 and the shipped slimserve model
on the same inputs, at 1 and 2 threads, batch 1 x 16 tokens and batch 8 x 64.

- PyTorch eager: the model the build exported, loaded as the build loads it (``source.module``
  + weights, or a ``source.huggingface`` folder through ``huggingface_torch.load_model``,
  offline), fp32, in ``torch.inference_mode()``, ``torch.set_num_threads(n)``.
- ONNX Runtime fp32: the uncompressed export (``dist/<name>/work/fp32.onnx``) with onnxruntime's
  default session options (all graph optimizations) and ``n`` intra-op threads: what a user gets
  by exporting and running the model without slimserve.
- slimserve: the shipped ``model.onnx`` opened exactly as the handler opens it
  (``slimserve.handler.model.session_options(n, manifest runtime.onnxruntime)``).

The three are timed interleaved (round-robin blocks) for every (threads, shape) cell, so their
ratios hold on a noisy machine. Median and p90 over at least ``min_runs`` runs after warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from slimserve.build.bench.common import Example
from slimserve.build.bench.stats import interleaved, ratio, runs_for_budget, summarize_ms
from slimserve.build.compression.latency import session_for, synthetic_feed

SHAPES = (("1x16", 1, 16), ("8x64", 8, 64))


def shape_label(example: Example, batch: int, tokens: int) -> str:
    if example.is_text:
        return f"batch {batch} × {tokens} tokens"
    dims = ", ".join(str(batch if axis == 0 and dim == -1 else dim) for axis, dim in enumerate(example.manifest.inputs[0].shape))
    return f"batch {batch} ([{dims}]; no token axis)"


def text_feed(session: Any, batch: int, tokens: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids of ``batch`` texts of exactly ``tokens`` tokens ([CLS] ... [SEP]), no padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 29000, size=(batch, tokens), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    columns = {
        "input_ids": ids,
        "attention_mask": np.ones((batch, tokens), dtype=np.int64),
        "token_type_ids": np.zeros((batch, tokens), dtype=np.int64),
    }
    feed = {}
    for node in session.get_inputs():
        dtype = np.int32 if node.type == "tensor(int32)" else np.int64
        feed[node.name] = columns[node.name].astype(dtype)
    return feed


def _handler_session(example: Example, threads: int) -> Any:
    """The shipped model opened as the handler opens it: its options and the manifest's
    ``runtime.onnxruntime``."""
    import onnxruntime as ort

    from slimserve.handler.model import session_options

    options = session_options(threads, example.manifest.runtime.onnxruntime.model_dump())
    options.log_severity_level = 3
    return ort.InferenceSession(str(example.model_path), sess_options=options, providers=["CPUExecutionProvider"])


def _torch_runner(model: Any, feed: dict[str, np.ndarray], order: list[str]) -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(feed[name])) for name in order]

    def run() -> Any:
        with torch.inference_mode():
            return model(*tensors)

    def output() -> np.ndarray:
        result = run()
        result = result[0] if isinstance(result, (tuple, list)) else result
        return result.detach().numpy()

    return run, output


def _agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    reference, other = reference.astype(np.float64).reshape(len(reference), -1), other.astype(np.float64).reshape(len(other), -1)
    cosine = (reference * other).sum(1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1) + 1e-12)
    return {"max_abs_diff": float(np.abs(reference - other).max()), "min_cosine": float(cosine.min())}


def measure_speed(
    example: Example,
    *,
    threads: tuple[int, ...] = (1, 2),
    min_runs: int = 60,
    max_runs: int = 1000,
    budget_s: float = 6.0,
    warmup: int = 10,
    status: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    torch_model = None
    torch_note = None
    order: list[str] = []
    if example.has_torch_source:
        import torch

        torch_model, order = example.torch_original()
        torch_version = torch.__version__
    else:
        torch_note = "no PyTorch source (source.onnx): PyTorch eager not measured"
        torch_version = None
    cells: list[dict[str, Any]] = []
    for thread_count in threads:
        if torch_model is not None:
            import torch

            torch.set_num_threads(thread_count)
        fp32 = session_for(example.fp32_path, thread_count)
        shipped = _handler_session(example, thread_count)
        for key, batch, tokens in SHAPES:
            status(f"{example.name}: model speed, {thread_count} thread(s), {key}")
            feed = text_feed(fp32, batch, tokens) if example.is_text else synthetic_feed(fp32, (batch, tokens))
            contenders: dict[str, Callable[[], Any]] = {}
            agreement: dict[str, Any] = {}
            fp32_out = fp32.run(None, feed)[0]
            shipped_out = shipped.run(None, feed)[0]
            agreement["slimserve_vs_onnxruntime_fp32"] = _agreement(fp32_out, shipped_out)
            if torch_model is not None:
                run, output = _torch_runner(torch_model, feed, order)
                contenders["pytorch_eager_fp32"] = run
                agreement["onnxruntime_fp32_vs_pytorch"] = _agreement(output(), fp32_out)
            contenders["onnxruntime_fp32"] = lambda s=fp32, f=feed: s.run(None, f)
            contenders["slimserve"] = lambda s=shipped, f=feed: s.run(None, f)
            # One timed call each (after a first, untimed one) sizes the run count to the budget.
            estimate = 0.0
            for call in contenders.values():
                call()
                started = time.perf_counter()
                call()
                estimate += time.perf_counter() - started
            runs = runs_for_budget(estimate, budget_s, minimum=min_runs, maximum=max_runs)
            samples = interleaved(contenders, runs=runs, warmup=warmup, rounds=10)
            engines = {}
            for name, values in samples.items():
                rounds = [float(np.median(chunk)) * 1e3 for chunk in np.array_split(np.asarray(values), 10) if len(chunk)]
                engines[name] = {
                    **summarize_ms(values),
                    "round_medians_ms": [round(value, 5) for value in rounds],
                    "round_median_spread_x": max(rounds) / min(rounds) if rounds and min(rounds) > 0 else None,
                }
            slim = engines["slimserve"]["median_ms"]
            cells.append(
                {
                    "threads": thread_count,
                    "shape": key,
                    "batch": batch,
                    "tokens": tokens if example.is_text else None,
                    "input": shape_label(example, batch, tokens),
                    "engines": engines,
                    "speedup_vs_onnxruntime_fp32_x": ratio(engines["onnxruntime_fp32"]["median_ms"], slim),
                    "speedup_vs_pytorch_eager_x": ratio(engines.get("pytorch_eager_fp32", {}).get("median_ms"), slim),
                    "output_agreement": agreement,
                }
            )
    return {
        "method": (
            "interleaved round-robin blocks (10 rounds) per cell; warm-up "
            f"{warmup} runs each; median/p90 of per-call wall time (time.perf_counter)"
        ),
        "engines": {
            "pytorch_eager_fp32": (
                "the model the build exported (source.module + weights, or the source.huggingface folder via "
                "huggingface_torch.load_model, offline), torch.inference_mode(), torch.set_num_threads(n)"
            ),
            "onnxruntime_fp32": "work/fp32.onnx, onnxruntime default options (ORT_ENABLE_ALL), intra_op=n, inter_op=1",
            "slimserve": (
                "shipped model.onnx with slimserve.handler.model.session_options(n, manifest runtime.onnxruntime) "
                f"(as served: {example.manifest.runtime.onnxruntime.model_dump()})"
            ),
        },
        "torch_version": torch_version,
        "note": torch_note,
        "cells": cells,
    }
