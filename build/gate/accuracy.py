"""``validation.metric = "accuracy"``: the classification gate."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.reference import Reference, load_dataset, reference_predictor
from slimserve.build.gate.validate import GateResult, batched, classification_gate, onnx_predictor


class AccuracyEvaluator:
    """Classification: accuracy of both models on labelled held-out data, top-1 agreement,
    max absolute logit difference; and how faithfully the fp32 export matches PyTorch."""

    metric: ClassVar[str] = "accuracy"

    def __init__(self, config: BuildConfig, reference: Reference) -> None:
        self.config = config
        self.inputs, self.labels = load_dataset(config, config.validation.data, "validation.data")
        expected = set(reference.input_names)
        if set(self.inputs) != expected:
            raise ConfigError(
                f"validation.data {config.validation.data} returned inputs {sorted(self.inputs)}, "
                f"the model takes {sorted(expected)}"
            )
        batch = config.validation.batch_size
        self.reference_out = batched(reference_predictor(reference), self.inputs, batch)
        self.export_max_abs_diff: float | None = None
        if reference.torch_model is not None:
            fp32_out = batched(onnx_predictor(reference.fp32_path), self.inputs, batch)
            self.export_max_abs_diff = float(np.max(np.abs(fp32_out.astype(np.float64) - self.reference_out)))

    def gate(self, candidate: Path) -> GateResult:
        validation = self.config.validation
        candidate_out = batched(onnx_predictor(candidate), self.inputs, validation.batch_size)
        result = classification_gate(
            self.reference_out, candidate_out, self.labels, validation.tolerance, validation.min_agreement,
            accuracy_lower_bound=validation.accuracy_lower_bound,
            agreement_lower_bound=validation.agreement_lower_bound,
        )
        if self.export_max_abs_diff is not None:
            result.extra["export_max_abs_diff"] = self.export_max_abs_diff
        return result
