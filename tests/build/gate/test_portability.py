"""Where the gate's verdict holds: the saturation check reads the model's integer weights and the
session options it is served with, so these models (made here, weights fixed) give the same
answer on any CPU. tests/build/gate/test_portability_qemu.py checks the claims on an emulated
AVX2 CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from slimserve.build.gate.portability import (
    DEFAULT_SERVING,
    PRECISE_INT8_SERVING,
    integer_portability,
    serving_options,
    verdict_scope,
)


def _matmul_integer(path: Path, weights: np.ndarray) -> Path:
    """x (u8) @ w (a constant of weights' type) with MatMulInteger: what dynamic int8 ships."""
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"], name="mm")],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _qlinear_matmul(path: Path, weights: np.ndarray, opset: int) -> Path:
    """QLinearMatMul (u8 x s8 -> u8) with a constant s8 weight, at the given opset."""
    scalar = {"a_scale": np.float32(0.1), "a_zero": np.uint8(0), "b_scale": np.float32(0.1), "b_zero": np.int8(0),
              "y_scale": np.float32(1.0), "y_zero": np.uint8(0)}
    graph = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["x", "a_scale", "a_zero", "w", "b_scale", "b_zero", "y_scale", "y_zero"], ["y"], name="qmm")],
        "qmm",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "w"), *(numpy_helper.from_array(np.array(v), k) for k, v in scalar.items())],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def _float_matmul(path: Path) -> Path:
    weights = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("weights", "free"),
    [
        (np.array([[127, -3], [5, 64]], dtype=np.int8), False),
        (np.array([[64, -64], [5, 0]], dtype=np.int8), True),
        (np.array([[255, 0], [7, 200]], dtype=np.uint8), True),
    ],
)
def test_weights_decide_whether_int8_can_clamp(tmp_path: Path, weights: np.ndarray, free: bool) -> None:
    """At the handler's default options (level basic), the weights decide."""
    result = integer_portability(_matmul_integer(tmp_path / "m.onnx", weights), "x86_64", DEFAULT_SERVING)
    assert result.saturation_free is free
    assert result.risky_nodes == (() if free else ("mm",))
    if not free:
        assert "s8 weights up to 127 (safe: 64)" in result.reason
    assert integer_portability(tmp_path / "m.onnx", "arm64").saturation_free


def test_full_range_s8_is_served_with_the_u8_conversion_and_then_portable(tmp_path: Path) -> None:
    """Only the model that needs it gets session.x64quantprecision at level extended; with it,
    onnxruntime's s8 -> u8 weight conversion covers MatMulInteger, so the verdict holds."""
    full = _matmul_integer(tmp_path / "full.onnx", np.array([[127, -3], [5, 64]], dtype=np.int8))
    seven_bit = _matmul_integer(tmp_path / "seven.onnx", np.array([[64, -64], [5, 0]], dtype=np.int8))
    assert serving_options(full) == PRECISE_INT8_SERVING == {
        "graph_optimization_level": "extended", "config": {}, "config_without_vnni": {"session.x64quantprecision": "1"},
    }
    assert serving_options(seven_bit) == DEFAULT_SERVING == {"graph_optimization_level": "basic", "config": {}, "config_without_vnni": {}}
    served = integer_portability(full, "x86_64")  # default: the model's own serving options
    assert served.saturation_free and served.risky_nodes == ()
    assert served.reason.endswith(
        "the same integers with or without VNNI/AMX; the full-range s8 weights of 1 of them are converted to u8 by "
        "onnxruntime on CPUs without VNNI (session option session.x64quantprecision = 1 there, optimization level "
        "extended everywhere: the manifest's runtime.onnxruntime)"
    )
    # The conversion is a level-2 transformer: at level basic the option does nothing.
    basic = {**PRECISE_INT8_SERVING, "graph_optimization_level": "basic"}
    assert not integer_portability(full, "x86_64", basic).saturation_free
    everywhere = {"graph_optimization_level": "extended", "config": {"session.x64quantprecision": "1"}}
    assert integer_portability(full, "x86_64", everywhere).saturation_free
    assert integer_portability(full, "x86_64", {**PRECISE_INT8_SERVING, "graph_optimization_level": "all"}).saturation_free


@pytest.mark.parametrize(("opset", "converted"), [(17, True), (21, False)])
def test_the_conversion_matches_operator_versions(tmp_path: Path, opset: int, converted: bool) -> None:
    """onnxruntime's transformer lists QLinearMatMul version 10 only: opset 21's (version 21) is
    not converted, so its full-range weights stay a risk and get no special options."""
    model = _qlinear_matmul(tmp_path / "q.onnx", np.full((4, 2), 127, dtype=np.int8), opset)
    assert (serving_options(model) == PRECISE_INT8_SERVING) is converted
    assert integer_portability(model, "x86_64", PRECISE_INT8_SERVING).saturation_free is converted


@pytest.mark.parametrize(
    ("options", "free"),
    [
        ({"reduce_range": False}, False),
        ({"reduce_range": True}, True),
        ({"reduce_range": False, "weight_type": "uint8"}, True),
    ],
)
def test_onnxruntime_dynamic_int8_settings(tmp_path: Path, options: dict, free: bool) -> None:
    """reduce_range (7-bit s8 weights) and u8 weights are saturation-free; full-range s8 is not."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = _float_matmul(tmp_path / "fp32.onnx")
    weight_type = QuantType.QUInt8 if options.get("weight_type") == "uint8" else QuantType.QInt8
    quantize_dynamic(
        str(source), str(tmp_path / "int8.onnx"), per_channel=True, reduce_range=options["reduce_range"], weight_type=weight_type
    )
    assert integer_portability(tmp_path / "int8.onnx", "x86_64", DEFAULT_SERVING).saturation_free is free
    # Served as the build serves it, full-range s8 is portable too (it gets the u8 conversion).
    assert integer_portability(tmp_path / "int8.onnx", "x86_64").saturation_free
    assert (serving_options(tmp_path / "int8.onnx") == PRECISE_INT8_SERVING) is not free
    assert integer_portability(source, "x86_64").reason == "no integer matrix products: nothing can clamp"


def test_qdq_weights_and_the_verdict_sentence(tmp_path: Path) -> None:
    weights = np.full((4, 2), 100, dtype=np.int8)
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["w_q", "scale", "zero"], ["w"], name="w_dq"),
            helper.make_node("MatMul", ["x", "w"], ["y"], name="dense"),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[
            numpy_helper.from_array(weights, "w_q"),
            numpy_helper.from_array(np.array(0.01, dtype=np.float32), "scale"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), "zero"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "qdq.onnx"))
    result = integer_portability(tmp_path / "qdq.onnx", "x86_64", PRECISE_INT8_SERVING)
    # QDQ weights are not among the conversion's ops: a risk whatever the session options.
    assert not result.saturation_free and result.risky_nodes == ("w_dq",)
    assert serving_options(tmp_path / "qdq.onnx") == DEFAULT_SERVING
    avx2 = {"cpu": "Some CPU", "machine": "x86_64", "int8_flags": ["avx2"], "int8_dot_product": False}
    sentence = verdict_scope(result, avx2)
    assert sentence.startswith("The gate's verdict holds only for the instruction set it ran on: Some CPU (avx2), i.e. x86_64 hosts without VNNI/AMX.")
    assert "reduce_range = true" in sentence
    portable = integer_portability(_matmul_integer(tmp_path / "m.onnx", weights // 2), "x86_64", DEFAULT_SERVING)
    assert verdict_scope(portable, avx2).startswith("The gate ran on Some CPU (avx2); its verdict holds on every x86_64 host")
