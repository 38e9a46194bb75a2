"""Per-tensor quantization noise of a static int8 (QDQ) model, with onnxruntime's
``qdq_loss_debug``: the sensitivity report's second table for ``static-int8``."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.compression.calibration import ArrayCalibrationReader


def _sqnr(reference: list[np.ndarray], noisy: list[np.ndarray]) -> float:
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

    value = compute_signal_to_quantization_noice_ratio(reference, noisy)
    return float(value) if math.isfinite(value) else 999.0


def qdq_errors(float_model: Path, qdq_model: Path, inputs: Mapping[str, np.ndarray], *, samples: int = 32) -> list[dict[str, Any]]:
    """Per-tensor SQNR of a static (QDQ) model, with onnxruntime's qdq_loss_debug: for
    activations, the noise of the tensor's own Q/DQ pair and the difference from the fp32
    model's tensor (which accumulates upstream noise); for weights, dequantized vs fp32.
    Sorted by the locally injected noise, worst first."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    producers = {output: node.name for node in _load_nodes(float_model) for output in node.output}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="slimserve-qdq-") as scratch:
        float_aug = str(Path(scratch) / "float_aug.onnx")
        qdq_aug = str(Path(scratch) / "qdq_aug.onnx")
        modify_model_output_intermediate_tensors(str(float_model), float_aug)
        modify_model_output_intermediate_tensors(str(qdq_model), qdq_aug)
        float_acts = collect_activations(float_aug, ArrayCalibrationReader(inputs, samples))
        qdq_acts = collect_activations(qdq_aug, ArrayCalibrationReader(inputs, samples))
    matched = create_activation_matching(qdq_acts, float_acts)
    for tensor, match in matched.items():
        row = {
            "tensor": tensor,
            "kind": "activation",
            "node": producers.get(tensor),
            "qdq_sqnr_db": _sqnr(match["pre_qdq"], match["post_qdq"]),
            "xmodel_sqnr_db": _sqnr(match["float"], match["post_qdq"]) if match.get("float") else None,
        }
        rows.append(row)
    consumers: dict[str, str] = {}
    for node in _load_nodes(float_model):
        for name in node.input:
            consumers.setdefault(name, node.name)
    for weight, match in create_weight_matching(str(float_model), str(qdq_model)).items():
        rows.append(
            {
                "tensor": weight,
                "kind": "weight",
                "node": consumers.get(weight),
                "qdq_sqnr_db": _sqnr([match["float"]], [match["dequantized"]]),
                "xmodel_sqnr_db": None,
            }
        )

    # Sorted by the noise each tensor's own Q/DQ injects (where accuracy is lost); the
    # cross-model SQNR also accumulates everything upstream, so it is reported beside it.
    return sorted(rows, key=lambda row: row["qdq_sqnr_db"])


def _load_nodes(model_path: Path) -> list[Any]:
    import onnx

    return list(onnx.load(str(model_path), load_external_data=False).graph.node)
