"""Reading a graph for compression choices, on the digits MLP (Gemm -> Relu -> Gemm -> Relu -> Gemm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.compression.graph import (
    looks_like_transformer,
    node_table,
    quantizable_nodes,
    resolve_nodes,
    weight_bytes,
)
from slimserve.build.errors import CompressionError

GEMMS = [("/0/Gemm", "Gemm"), ("/2/Gemm", "Gemm"), ("/4/Gemm", "Gemm")]


def test_nodes_weights_and_what_a_quantizer_changes(digits_fp32: Path) -> None:
    assert node_table(digits_fp32) == [
        ("/0/Gemm", "Gemm"), ("/1/Relu", "Relu"), ("/2/Gemm", "Gemm"), ("/3/Relu", "Relu"), ("/4/Gemm", "Gemm"),
    ]
    assert quantizable_nodes(digits_fp32, "dynamic-int8") == GEMMS
    assert quantizable_nodes(digits_fp32, "static-int8") == GEMMS
    # fp32 bytes of weights + bias: 64x128+128, 128x128+128, 128x10+10 floats
    assert weight_bytes(digits_fp32) == {"/0/Gemm": 33280, "/1/Relu": 0, "/2/Gemm": 66048, "/3/Relu": 0, "/4/Gemm": 5160}
    assert not looks_like_transformer(digits_fp32)


def test_resolve_nodes_takes_names_patterns_and_op_types(digits_fp32: Path) -> None:
    assert resolve_nodes(digits_fp32, ["/2/Gemm"]) == ["/2/Gemm"]
    assert resolve_nodes(digits_fp32, ["/[02]/Gemm", "/2/*"], ["Relu"]) == ["/0/Gemm", "/2/Gemm", "/1/Relu", "/3/Relu"]
    with pytest.raises(CompressionError, match=r"'/9/Gemm' matches no node of fp32.onnx \(5 nodes, e.g. /0/Gemm, "):
        resolve_nodes(digits_fp32, ["/9/Gemm"])
    with pytest.raises(CompressionError, match=r"no 'Conv' node in fp32.onnx \(op types present: \['Gemm', 'Relu'\]\)"):
        resolve_nodes(digits_fp32, [], ["Conv"])
