"""compression.method = "per-token-int8" on small BERT-shaped encoders built here (toymodels):
which MatMuls it finds (by structure, the nodes are named n0, n1...), what it writes, what it
refuses, and how the build serves the result. Nothing here depends on the CPU's int8 kernels:
outputs are compared with fp32 at a tolerance far above quantization noise, and the integer
claims are read from the model (the emulated-AVX2 check is test_portability_qemu.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from slimserve.build.compression import per_token
from slimserve.build.compression.methods import compress
from slimserve.build.config import CompressionConfig
from slimserve.build.errors import CompressionError
from slimserve.build.gate.portability import (
    DEFAULT_SERVING,
    PRECISE_INT8_SERVING,
    integer_portability,
    serving_options,
)
from slimserve.build.gate.validate import cosine_rows, onnx_session

from toymodels import tiny_encoder

IDS = np.random.default_rng(1).integers(0, 1100, (8, 12))


def _ops(path: Path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def _run(path: Path, ids: np.ndarray = IDS) -> np.ndarray:
    return onnx_session(path).run(None, {"input_ids": ids})[0]


@pytest.mark.parametrize("options", [{}, {"decomposed_layer_norm": True, "opset": 13}, {"opset": 18}])
def test_finds_the_encoder_matmuls_by_structure(tmp_path: Path, options: dict) -> None:
    model = onnx.load(str(tiny_encoder(tmp_path / "fp32.onnx", layers=2, **options)))
    normalized, gelu = per_token.find_targets(model)
    # per layer: Q/K/V share a layer norm's output, FFN-in has its own; FFN-out reads the GELU.
    assert sorted(len(nodes) for nodes in normalized.values()) == [1, 1, 3, 3]
    assert [len(nodes) for nodes in gelu.values()] == [1, 1]
    found = {node.name for nodes in [*normalized.values(), *gelu.values()] for node in nodes}
    matmuls_with_weights = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1].startswith("c")]
    assert len(matmuls_with_weights) == 12 and len(found) == 10  # the two attention output projections are left


@pytest.mark.parametrize("options", [{}, {"decomposed_layer_norm": True, "opset": 13}, {"opset": 18}])
def test_compress_writes_per_token_int8_close_to_fp32(tmp_path: Path, options: dict) -> None:
    source = tiny_encoder(tmp_path / "fp32.onnx", layers=2, **options)
    applied = compress(source, tmp_path / "int8.onnx", CompressionConfig(method="per-token-int8"))
    assert applied == {
        "method": "per-token-int8", "per_channel": True, "reduce_range": False, "weight_type": "int8",
        "activations": "u8, one asymmetric scale per token row (in the graph)",
        "per_token_matmuls": 10, "merged_groups": 2, "gelu_inputs": 2, "embedding_tables_u8": 1, "nodes_to_exclude": [],
    }
    ops = _ops(tmp_path / "int8.onnx")
    # Q/K/V merged (one GEMM + Split per layer), FFN in, FFN out: 3 per layer; the attention
    # output projection: onnxruntime's dynamic int8 (MatMulInteger); no float weight MatMul left.
    assert ops["MatMulIntegerToFloat"] == 6 and ops["Split"] == 2 and ops["MatMulInteger"] == 2
    assert ops["MatMul"] == 4  # attention scores and context: activations x activations
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "int8.onnx")).graph.initializer}
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in weights.values() if w.dtype == np.int8) == 127
    assert any(w.dtype == np.uint8 and w.shape == (1100, 32) for w in weights.values())  # u8 vocabulary rows
    cosine = cosine_rows(_run(source), _run(tmp_path / "int8.onnx"))
    assert cosine.min() > 0.99
    # A token row's scale does not depend on the other rows: each sequence alone and in the batch
    # agree (0.9992 here; dynamic-int8's per-tensor scales give 0.963 on this model). Only the
    # attention output projection, per-tensor, still sees the batch.
    alone = np.concatenate([_run(tmp_path / "int8.onnx", IDS[i : i + 1]) for i in range(len(IDS))])
    assert cosine_rows(alone, _run(tmp_path / "int8.onnx")).min() > 0.998


def test_gelu_shift_is_folded_into_the_bias(tmp_path: Path) -> None:
    """FFN out: x + 0.17 is quantized; the -0.17 * column sums go into the bias Add (no extra node)."""
    source = tiny_encoder(tmp_path / "fp32.onnx")
    _, gelu = per_token.find_targets(onnx.load(str(source)))
    (ffn_out,) = next(iter(gelu.values()))
    per_token.rewrite(source, tmp_path / "pt.onnx", per_channel=True, reduce_range=False)
    rewritten = onnx.load(str(tmp_path / "pt.onnx"))
    assert not [n for n in rewritten.graph.node if n.name.endswith("_fix") and n.op_type == "Add" and "shift_fix" in n.input[1]]
    bias_add = next(n for n in rewritten.graph.node if ffn_out.output[0] in n.input)
    assert any(name.endswith("_bias") for name in bias_add.input)


def test_reduce_range_weights_need_no_special_session_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tiny_encoder(tmp_path / "fp32.onnx")
    compress(source, tmp_path / "full.onnx", CompressionConfig(method="per-token-int8"))
    compress(source, tmp_path / "seven.onnx", CompressionConfig(method="per-token-int8", reduce_range=True))
    assert serving_options(tmp_path / "full.onnx") == PRECISE_INT8_SERVING
    assert serving_options(tmp_path / "seven.onnx") == DEFAULT_SERVING
    assert integer_portability(tmp_path / "seven.onnx", "x86_64").saturation_free
    assert integer_portability(tmp_path / "full.onnx", "x86_64").saturation_free
    assert not integer_portability(tmp_path / "full.onnx", "x86_64", DEFAULT_SERVING).saturation_free
    # The gate's sessions are the handler's: level extended, and the conversion for the full
    # range where the CPU lacks VNNI (whichever CPU runs this test: both cases are forced).
    import slimserve.handler.model as handler_model

    for saturates in (True, False):
        monkeypatch.setattr(handler_model, "int8_kernels_can_saturate", lambda saturates=saturates: saturates)
        options = onnx_session(tmp_path / "full.onnx").get_session_options()
        assert str(options.graph_optimization_level).endswith("ORT_ENABLE_EXTENDED")
        if saturates:
            assert options.get_session_config_entry("session.x64quantprecision") == "1"
        else:
            with pytest.raises(RuntimeError, match="does not have configuration with key: session.x64quantprecision"):
                options.get_session_config_entry("session.x64quantprecision")
    assert str(onnx_session(tmp_path / "seven.onnx").get_session_options().graph_optimization_level).endswith("ORT_ENABLE_BASIC")


def test_nodes_to_exclude_and_op_types_keep_fp32(tmp_path: Path) -> None:
    source = tiny_encoder(tmp_path / "fp32.onnx")
    normalized, _ = per_token.find_targets(onnx.load(str(source)))
    ffn_in = next(nodes[0].name for nodes in normalized.values() if len(nodes) == 1)
    config = CompressionConfig(method="per-token-int8", nodes_to_exclude=[ffn_in], op_types_to_exclude=["Gather"])
    applied = compress(source, tmp_path / "int8.onnx", config)
    assert applied["per_token_matmuls"] == 4 and applied["embedding_tables_u8"] == 0
    assert applied["nodes_kept_fp32"][0] == ffn_in
    kept = {n.name for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert ffn_in in kept and "n0" in kept  # n0: the vocabulary Gather


def test_refuses_a_graph_without_an_encoder(tmp_path: Path, digits_fp32: Path) -> None:
    with pytest.raises(CompressionError) as caught:
        compress(digits_fp32, tmp_path / "int8.onnx", CompressionConfig(method="per-token-int8"))
    assert str(caught.value) == (
        "compression.method = 'per-token-int8' handles BERT-family encoders (MatMuls with constant weights fed by a "
        "layer norm) and found none in fp32.onnx; use dynamic-int8 for this model"
    )
    assert per_token.unsupported(digits_fp32) == str(caught.value)
    assert per_token.unsupported(tiny_encoder(tmp_path / "encoder.onnx")) is None
