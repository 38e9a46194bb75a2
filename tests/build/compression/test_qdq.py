"""onnxruntime's qdq_loss_debug on the real digits model: the per-tensor noise table finds the
tensor an activation outlier lives in (one hidden neuron x1000, its outgoing weights /1000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.compression.methods import compress, optimize
from slimserve.build.compression.qdq import qdq_errors
from slimserve.build.config import CompressionConfig, load_config
from slimserve.build.gate.reference import load_dataset

from repo import EXAMPLES_DIR


@pytest.fixture(scope="module")
def setup(digits_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("qdq")
    config = load_config(EXAMPLES_DIR / "digits", {"validation.calibration": "data.py:calibration"})
    return {
        "calibration": load_dataset(config, "data.py:calibration", "validation.calibration")[0],
        **{name: optimize(path, folder / f"{name}-optimized.onnx") for name, path in digits_models.items()},
    }


def test_qdq_loss_debug_finds_the_noisy_tensor(setup, tmp_path: Path) -> None:
    config = CompressionConfig(method="static-int8")
    local_noise = {}
    for name in ("fp32", "outlier"):
        compress(setup[name], tmp_path / f"{name}-qdq.onnx", config, calibration=setup["calibration"])
        rows = qdq_errors(setup[name], tmp_path / f"{name}-qdq.onnx", setup["calibration"])
        assert {row["kind"] for row in rows} == {"activation", "weight"}
        local_noise[name] = {row["tensor"]: row["qdq_sqnr_db"] for row in rows}
        if name == "outlier":
            # the tensor the outlier neuron lives in: its Q/DQ leaves no signal for the others
            assert rows[0]["tensor"] == "/1/Relu_output_0" and rows[0]["node"] == "/1/Relu"
            assert rows[0]["qdq_sqnr_db"] < 3
    assert local_noise["fp32"]["/1/Relu_output_0"] > local_noise["outlier"]["/1/Relu_output_0"] + 8
