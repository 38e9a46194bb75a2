"""Each compression method, gated on the real digits held-out data: one configuration that
passes and one that fails the gate for dynamic int8, static int8 (QDQ) and fp16, and mixed
precision (nodes kept in fp32) turning a failing configuration into a passing one.

The failing configurations use digits models that compute almost exactly what the trained
model computes in fp32 but are hard to compress, as real models can be:
- ``outlier``: one hidden neuron's activations scaled x1000 (its outgoing weights /1000).
  Per-tensor int8 activations then spend their whole range on that one neuron: accuracy
  collapses under every int8 method unless /2/Gemm (which reads that tensor) stays fp32.
- ``offset``: the second hidden layer's activations ride on a +10,000 bias that the output
  layer's bias subtracts again. fp16 cannot store those biases precisely (its spacing at
  10,000 is 8): accuracy drops unless /4/Gemm stays fp32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimserve.build.compression.methods import compress, fuse_transformer, optimize
from slimserve.build.config import CompressionConfig, load_config
from slimserve.build.errors import CompressionError, ConfigError
from slimserve.build.gate.accuracy import AccuracyEvaluator
from slimserve.build.gate.reference import Reference, load_dataset

from repo import REPO_ROOT
from toymodels import MINIMAL_CONFIG, offset_model

DIGITS = REPO_ROOT / "examples" / "digits"


def matmul_model(source: Path, destination: Path) -> Path:
    """The same model with each Gemm spelled MatMul + Add, as transformer exports are."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type != "Gemm":
            nodes.append(node)
            continue
        transposed = node.input[1] + "_T"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(numpy_helper.to_array(initializers[node.input[1]]).T), transposed))
        nodes.append(helper.make_node("MatMul", [node.input[0], transposed], [node.output[0] + "_mm"], name=node.name.replace("Gemm", "MatMul")))
        nodes.append(helper.make_node("Add", [node.output[0] + "_mm", node.input[2]], [node.output[0]], name=node.name.replace("Gemm", "Add")))
    del graph.node[:]
    graph.node.extend(nodes)
    for name in {n.input[1] for n in onnx.load(str(source)).graph.node if n.op_type == "Gemm"}:
        graph.initializer.remove(initializers[name])
    onnx.save(model, str(destination))
    return destination


@pytest.fixture(scope="module")
def models(digits_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("compress-models")
    paths = {**digits_models, "offset": offset_model(digits_models["fp32"], folder / "offset.onnx")}
    optimized = {name: optimize(path, folder / f"{name}-optimized.onnx") for name, path in paths.items()}
    # onnxruntime's optimizer would fuse MatMul + Add back into Gemm: these stay unoptimized
    for name in ("fp32", "outlier"):
        optimized[f"{name}-mm"] = paths[f"{name}-mm"] = matmul_model(paths[name], folder / f"{name}-mm.onnx")
    return optimized | {f"{name}-raw": path for name, path in paths.items()}


@pytest.fixture(scope="module")
def config():
    return load_config(DIGITS, {"validation.calibration": "data.py:calibration"})


@pytest.fixture(scope="module")
def calibration(config) -> dict[str, np.ndarray]:
    return load_dataset(config, "data.py:calibration", "validation.calibration")[0]


@pytest.fixture(scope="module")
def evaluators(config, models) -> dict[str, AccuracyEvaluator]:
    # Each model is its own reference: the gate measures what compression loses.
    return {
        name: AccuracyEvaluator(config, Reference(models[f"{name}-raw"], None, ["pixels"]))
        for name in ("fp32", "outlier", "offset", "fp32-mm", "outlier-mm")
    }


def _gate(models, evaluators, calibration, tmp_path: Path, model: str, **options):
    out = tmp_path / "candidate.onnx"
    applied = compress(models[model], out, CompressionConfig(**options), calibration=calibration)
    return applied, evaluators[model].gate(out), out


def _ops(path: Path) -> list[str]:
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]


# -- dynamic int8 ---------------------------------------------------------------------------


def test_dynamic_int8_passes_on_digits(models, evaluators, calibration, tmp_path: Path) -> None:
    applied, gate, out = _gate(models, evaluators, calibration, tmp_path, "fp32", method="dynamic-int8")
    assert gate.passed, gate.explain()
    assert gate.samples == 360 and gate.reference > 0.95
    assert applied == {"method": "dynamic-int8", "per_channel": True, "reduce_range": False, "weight_type": "int8", "nodes_to_exclude": []}
    assert out.stat().st_size < models["fp32"].stat().st_size / 3
    assert "MatMulInteger" in _ops(out)


@pytest.mark.parametrize("per_channel", [True, False])
def test_dynamic_int8_fails_on_activation_outlier(models, evaluators, calibration, tmp_path: Path, per_channel: bool) -> None:
    _, gate, _ = _gate(models, evaluators, calibration, tmp_path, "outlier", method="dynamic-int8", per_channel=per_channel)
    assert not gate.passed
    assert gate.reference > 0.95 and gate.candidate < 0.6
    assert "accuracy gate FAILED on 360 held-out samples: accuracy loss = " in gate.explain()


def test_mixed_precision_dynamic_keeps_the_sensitive_node_fp32_and_passes(models, evaluators, calibration, tmp_path: Path) -> None:
    applied, gate, out = _gate(
        models, evaluators, calibration, tmp_path, "outlier", method="dynamic-int8", nodes_to_exclude=["/2/Gemm"]
    )
    assert gate.passed, gate.explain()
    assert applied["nodes_to_exclude"] == ["/2/Gemm"]
    assert _ops(out).count("MatMulInteger") == 2 and "MatMul" in _ops(out)  # /0 and /4 int8, /2 fp32
    assert models["fp32"].stat().st_size / 3 < out.stat().st_size < models["fp32"].stat().st_size


def test_gemm_excluded_by_name_or_op_type_really_stays_fp32(models, evaluators, calibration, tmp_path: Path) -> None:
    # quantize_dynamic renames Gemm "X" to MatMul "X_MatMul" before applying nodes_to_exclude.
    applied, gate, out = _gate(models, evaluators, calibration, tmp_path, "fp32", method="dynamic-int8", op_types_to_exclude=["Gemm"])
    assert "MatMulInteger" not in _ops(out)
    assert applied["nodes_kept_fp32"] == ["/0/Gemm", "/2/Gemm", "/4/Gemm"]
    assert gate.extra["max_abs_output_diff"] < 1e-4


# -- static int8 (QDQ) ----------------------------------------------------------------------


@pytest.mark.parametrize("calibrate_method,extra", [("MinMax", {}), ("Entropy", {}), ("Percentile", {"percentile": 99.99})])
def test_static_int8_qdq_passes_on_digits(models, evaluators, calibration, tmp_path: Path, calibrate_method: str, extra: dict) -> None:
    applied, gate, out = _gate(
        models, evaluators, calibration, tmp_path, "fp32",
        method="static-int8", calibrate_method=calibrate_method, reduce_range=True, **extra,
    )
    assert gate.passed, gate.explain()
    assert applied["format"] == "QDQ" and applied["calibrate_method"] == calibrate_method
    ops = _ops(out)
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert out.stat().st_size < models["fp32"].stat().st_size / 2


def test_static_int8_fails_on_activation_outlier(models, evaluators, calibration, tmp_path: Path) -> None:
    _, gate, _ = _gate(models, evaluators, calibration, tmp_path, "outlier", method="static-int8", reduce_range=True)
    assert not gate.passed and gate.candidate < 0.6


def test_mixed_precision_static_with_patterns_passes(models, evaluators, calibration, tmp_path: Path) -> None:
    # Static QDQ quantizes tensors: the outlier tensor stays fp32 only if its producer chain
    # (/0/Gemm -> /1/Relu) and its consumer (/2/Gemm) all do. Patterns name them.
    applied, gate, _ = _gate(
        models, evaluators, calibration, tmp_path, "outlier", method="static-int8", reduce_range=True,
        nodes_to_exclude=["/[012]/*"],
    )
    assert gate.passed, gate.explain()
    assert applied["nodes_kept_fp32"] == ["/0/Gemm", "/1/Relu", "/2/Gemm"]


def test_static_int8_without_calibration_is_refused(models, tmp_path: Path) -> None:
    with pytest.raises(CompressionError, match=r"^static-int8 needs calibration data \(validation.calibration in slimserve.toml\)$"):
        compress(models["fp32"], tmp_path / "x.onnx", CompressionConfig(method="static-int8"))


# -- fp16 -----------------------------------------------------------------------------------


def test_fp16_passes_on_digits_with_fp32_io(models, evaluators, calibration, tmp_path: Path) -> None:
    import onnx

    applied, gate, out = _gate(models, evaluators, calibration, tmp_path, "fp32", method="fp16")
    assert gate.passed and gate.extra["top1_agreement"] == 1.0
    assert applied == {"method": "fp16", "keep_io_types": True}
    graph = onnx.load(str(out)).graph
    assert [value.type.tensor_type.elem_type for value in [*graph.input, *graph.output]] == [onnx.TensorProto.FLOAT] * 2
    assert out.stat().st_size < models["fp32"].stat().st_size * 0.6


def test_fp16_fails_when_weights_need_fp32_precision(models, evaluators, calibration, tmp_path: Path) -> None:
    _, gate, _ = _gate(models, evaluators, calibration, tmp_path, "offset", method="fp16")
    assert not gate.passed
    assert gate.reference - gate.candidate > 0.02


def test_mixed_precision_fp16_keeps_the_node_fp32_and_passes(models, evaluators, calibration, tmp_path: Path) -> None:
    applied, gate, _ = _gate(models, evaluators, calibration, tmp_path, "offset", method="fp16", nodes_to_exclude=["/4/Gemm"])
    assert gate.passed, gate.explain()
    assert applied["nodes_to_exclude"] == ["/4/Gemm"]


# -- matmul-nbits (blockwise weight-only, onnxruntime MatMulNBits) ---------------------------


def test_matmul_nbits_int8_passes(models, evaluators, calibration, tmp_path: Path) -> None:
    applied, gate, out = _gate(models, evaluators, calibration, tmp_path, "fp32-mm", method="matmul-nbits")
    assert gate.passed, gate.explain()
    assert applied == {
        "method": "matmul-nbits", "bits": 8, "block_size": 32, "accuracy_level": 4, "blockwise_matmuls": 3,
        "other_ops_int8": [], "nodes_to_exclude": [],
    }
    assert _ops(out).count("MatMulNBits") == 3
    assert out.stat().st_size < models["fp32-mm"].stat().st_size / 3


def test_matmul_nbits_int4_with_wide_blocks_fails_on_outlier_and_mixed_precision_fixes_it(models, evaluators, calibration, tmp_path: Path) -> None:
    options = {"method": "matmul-nbits", "bits": 4, "block_size": 128}
    _, gate, _ = _gate(models, evaluators, calibration, tmp_path, "outlier-mm", **options)
    assert not gate.passed and gate.reference - gate.candidate > 0.05
    _, gate, out = _gate(models, evaluators, calibration, tmp_path, "outlier-mm", **options, nodes_to_exclude=["/2/MatMul"])
    assert gate.passed, gate.explain()
    assert _ops(out).count("MatMulNBits") == 2


def test_matmul_nbits_without_matmuls_is_refused(models, tmp_path: Path) -> None:
    with pytest.raises(CompressionError, match=r"^compression.method = 'matmul-nbits' found no MatMul with constant weights in fp32-optimized.onnx"):
        compress(models["fp32"], tmp_path / "x.onnx", CompressionConfig(method="matmul-nbits"))


# -- refusals -------------------------------------------------------------------------------


def test_unknown_node_name_is_an_error_not_ignored(models, tmp_path: Path) -> None:
    with pytest.raises(CompressionError) as caught:
        compress(models["fp32"], tmp_path / "x.onnx", CompressionConfig(nodes_to_exclude=["/9/Gemm"]))
    assert str(caught.value).startswith(
        "compression.nodes_to_exclude: '/9/Gemm' matches no node of fp32-optimized.onnx (5 nodes, e.g. /0/Gemm, /1/Relu"
    )


def test_unknown_op_type_is_an_error(models, tmp_path: Path) -> None:
    with pytest.raises(CompressionError, match=r"compression.op_types_to_exclude: no 'Attention' node in fp32-optimized.onnx"):
        compress(models["fp32"], tmp_path / "x.onnx", CompressionConfig(op_types_to_exclude=["Attention"]))


def test_transformer_fusion_that_fuses_nothing_is_an_error(models, tmp_path: Path) -> None:
    with pytest.raises(CompressionError, match=r"compression.transformer_fusion = 'bert' fused nothing in fp32-optimized.onnx"):
        fuse_transformer(models["fp32"], tmp_path / "fused.onnx", "bert")




@pytest.mark.parametrize(
    "compression,validation,message",
    [
        ('method = "static-int8"', "", "  compression.method: 'static-int8' needs calibration data: set validation.calibration ('file.py:function', separate from validation.data)"),
        ('method = "static-int8"\npercentile = 99.9', 'calibration = "data.py:cal"', "  compression.percentile: applies only to calibrate_method = 'Percentile' (got 'MinMax')"),
        ('method = "static-int8"\nactivation_type = "int8"\nweight_type = "uint8"', 'calibration = "data.py:cal"', "  compression.weight_type: int8 activations need int8 weights (onnxruntime has no int8 x uint8 kernels)"),
        ('calibrate_method = "KL"', "", "  compression.calibrate_method: Input should be 'MinMax', 'Entropy' or 'Percentile'"),
        ('op_types_to_exclude = ["MatMul"]\nop_types_to_quantize = ["MatMul", "Gather"]', "", "  compression.op_types_to_exclude: ['MatMul'] also listed in op_types_to_quantize"),
        ('method = "fp16"\n[compression.auto]\nobjective = "size"', "", "  compression.auto: [compression.auto] applies only to method = 'auto' (got 'fp16')"),
        ('method = "int4"', "", "  compression.method: Input should be 'none', 'dynamic-int8', 'static-int8' or 'fp16' (one method), 'matmul-nbits' (blockwise weight-only int8 / int4), 'per-token-int8' (BERT-family encoders: activations scaled per token), or 'auto' (search them and ship the best that passes the gate)"),
        ('method = "per-token-int8"\nweight_type = "uint8"', "", "  compression.weight_type: per-token-int8 quantizes weights to int8 (onnxruntime's MatMulIntegerToFloat s8 kernels); got 'uint8'"),
        ('method = "per-token-int8"\ntransformer_fusion = "bert"', "", "  compression.transformer_fusion: per-token-int8 rewrites the unfused encoder graph (a fused Attention has no per-token int8 kernel); remove transformer_fusion"),
        ('method = "per-token-int8"\nop_types_to_quantize = ["MatMul"]', "", "  compression.op_types_to_quantize: per-token-int8 picks its own (MatMul and the vocabulary Gather); use nodes_to_exclude or op_types_to_exclude to keep nodes in fp32"),
        ('transformer_fusion = "llama"', "", "  compression.transformer_fusion: Input should be 'bert', 'bart', 'gpt2', 't5', 'vit' or 'clip'"),
        ("", 'calibration = "data.py:heldout"', "  validation.calibration: must not be the held-out validation.data"),
    ],
)
def test_config_errors(tmp_path: Path, compression: str, validation: str, message: str) -> None:
    text = MINIMAL_CONFIG.replace("[validation]\n", f"[validation]\n{validation}\n") + f"[compression]\n{compression}\n"
    (tmp_path / "slimserve.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'slimserve.toml'} is invalid:\n")
    assert message in str(caught.value).splitlines()


def test_config_defaults_are_backwards_compatible(tmp_path: Path) -> None:
    (tmp_path / "slimserve.toml").write_text(MINIMAL_CONFIG)
    config = load_config(tmp_path)
    compression = config.compression
    assert (compression.method, compression.per_channel, compression.reduce_range, compression.weight_type) == ("dynamic-int8", True, False, "int8")
    assert (compression.activation_type, compression.calibrate_method, compression.percentile) == ("uint8", "MinMax", None)
    assert compression.nodes_to_exclude == [] and compression.op_types_to_exclude == [] and compression.transformer_fusion is None
    assert config.prune is None and config.distill is None


def test_optimize_leaves_nothing_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_build: Path) -> None:
    """When symbolic shape inference gives up (MiniLM), onnxruntime leaves
    sym_shape_infer_temp.onnx and a <uuid>.data file in the cwd; optimize runs it in a scratch
    folder and retries without it."""
    import onnxruntime.quantization.shape_inference as shape_inference

    from slimserve.build.compression.methods import optimize

    real = shape_inference.quant_pre_process
    calls: list[bool] = []

    def gives_up_first(source, destination, *, skip_symbolic_shape=False, **kwargs):
        calls.append(skip_symbolic_shape)
        if not skip_symbolic_shape:
            Path("sym_shape_infer_temp.onnx").write_bytes(b"leftover")
            Path("3767b9f4-0000.data").write_bytes(b"leftover")
            raise RuntimeError("Incomplete symbolic shape inference")
        return real(source, destination, skip_symbolic_shape=True, **kwargs)

    monkeypatch.setattr(shape_inference, "quant_pre_process", gives_up_first)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    optimize(digits_build / "work" / "fp32.onnx", tmp_path / "out" / "optimized.onnx")
    assert calls == [False, True]
    assert (tmp_path / "out" / "optimized.onnx").is_file()
    assert list(workdir.iterdir()) == []
