"""The digits model the compression tests start from. Both fixtures go through the session's
digits build (tests/conftest.py), which trains examples/digits/weights.safetensors when it is
missing, once, under a lock shared by xdist workers: loading the weights before that would
fail on a fresh clone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimserve.build.config import load_config
from slimserve.build.pipeline.export import export_onnx
from slimserve.build.pipeline.source import load_torch_model

from repo import EXAMPLES_DIR
from toymodels import outlier_model


@pytest.fixture(scope="session")
def digits_weights(digits_build: Path) -> Path:
    """examples/digits/weights.safetensors, trained if it was missing."""
    return EXAMPLES_DIR / "digits" / "weights.safetensors"


@pytest.fixture(scope="session")
def digits_fp32(digits_build: Path) -> Path:
    """The trained digits model's fp32 ONNX export (the build's own; read it, do not modify it)."""
    return digits_build / "work" / "fp32.onnx"


@pytest.fixture(scope="session")
def digits_models(digits_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``fp32``: the trained model; ``outlier``: the same function with one hidden neuron's
    activations x1000 (its outgoing weights /1000), which int8 cannot keep accurate unless
    /2/Gemm stays fp32 (see toymodels.outlier_model)."""
    folder = tmp_path_factory.mktemp("digits-models")
    return {"fp32": digits_fp32, "outlier": outlier_model(digits_fp32, folder / "outlier.onnx")}


@pytest.fixture(scope="session")
def torch_example(digits_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path, str], dict[str, Any]]:
    """``torch_example(example, name)``: the example's config, its PyTorch model (the digits
    weights, trained) and that model's fp32 export ``<name>.onnx`` in a new folder."""

    def load(example: Path, name: str) -> dict[str, Any]:
        folder = tmp_path_factory.mktemp(name)
        config = load_config(example)
        model = load_torch_model(config)
        fp32 = export_onnx(model, config.export, folder / f"{name}.onnx")
        return {"config": config, "model": model, "fp32": fp32, "folder": folder}

    return load
