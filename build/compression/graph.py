"""What an ONNX graph holds that compression choices depend on: its nodes by name and op type,
which of them a quantizer would change, what keeping one in fp32 costs, whether it looks like a
transformer. Read-only: nothing here writes a model.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from slimserve.build.errors import CompressionError


def looks_like_transformer(model_path: Path) -> bool:
    """Softmax + MatMul + a layer norm (fused or spelled out): worth trying the fusions."""
    import onnx

    ops = {node.op_type for node in onnx.load(str(model_path), load_external_data=False).graph.node}
    return {"Softmax", "MatMul"} <= ops and bool(ops & {"LayerNormalization", "ReduceMean"})


def node_table(model_path: Path) -> list[tuple[str, str]]:
    """(name, op_type) of every node in graph order."""
    import onnx

    return [(node.name, node.op_type) for node in onnx.load(str(model_path), load_external_data=False).graph.node]


def resolve_nodes(model_path: Path, names: Iterable[str], op_types: Iterable[str] = ()) -> list[str]:
    """Node names kept in fp32: exact names or fnmatch patterns, plus every node of the given
    op types. A name or pattern that matches no node is an error (typos must not pass silently)."""
    nodes = node_table(model_path)
    chosen: list[str] = []
    for pattern in names:
        matched = [name for name, _ in nodes if name == pattern or fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            sample = ", ".join(name for name, _ in nodes[:6])
            raise CompressionError(
                f"compression.nodes_to_exclude: {pattern!r} matches no node of {model_path.name} "
                f"({len(nodes)} nodes, e.g. {sample}); see the sensitivity table for names"
            )
        chosen += [name for name in matched if name not in chosen]
    wanted_types = set(op_types)
    present_types = {op for _, op in nodes}
    for op_type in sorted(wanted_types - present_types):
        raise CompressionError(
            f"compression.op_types_to_exclude: no {op_type!r} node in {model_path.name} "
            f"(op types present: {sorted(present_types)})"
        )
    chosen += [name for name, op in nodes if op in wanted_types and name not in chosen]
    return chosen


def quantizable_nodes(model_path: Path, method: str = "dynamic-int8") -> list[tuple[str, str]]:
    """(name, op_type) of the nodes onnxruntime's quantizer would turn to int8 with weights:
    what keeping a node in fp32 can change. Nodes whose weight input is not a constant are
    left out (the dynamic quantizer skips them with MatMulConstBOnly)."""
    import onnx
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry

    model = onnx.load(str(model_path), load_external_data=False)
    # float weights worth quantizing (not shape indices, not scalars)
    weights = {
        init.name for init in model.graph.initializer
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and int(np.prod(init.dims)) >= 16
    }
    registry = set(IntegerOpsRegistry) | {"Gemm"} if method in ("dynamic-int8", "matmul-nbits", "per-token-int8") else set(QDQRegistry)
    weighted = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "Attention", "EmbedLayerNormalization", "LSTM"}
    chosen = []
    for node in model.graph.node:
        if node.op_type in registry and node.op_type in weighted and any(name in weights for name in node.input):
            chosen.append((node.name, node.op_type))
    return chosen


def weight_bytes(model_path: Path) -> dict[str, int]:
    """fp32 bytes of each node's constant inputs: what keeping the node fp32 costs in size."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    sizes = {init.name: int(np.prod(init.dims)) * 4 for init in model.graph.initializer}
    return {node.name: sum(sizes.get(name, 0) for name in node.input) for node in model.graph.node}


# ai.onnx.ml operators that hold a model's parameters in their attributes.
_ATTRIBUTE_MODELS = {
    "TreeEnsemble", "TreeEnsembleClassifier", "TreeEnsembleRegressor", "LinearClassifier", "LinearRegressor",
    "SVMClassifier", "SVMRegressor", "Scaler", "Normalizer", "Imputer", "OneHotEncoder", "LabelEncoder",
}


def not_applicable(model_path: Path, method: str) -> str | None:
    """Why ``method`` cannot shrink this model (None when it can): int8, fp16 and MatMulNBits
    rewrite MatMul / Gemm / Conv (and embedding Gather) weights; tree ensembles, linear models and
    scalers of ``ai.onnx.ml`` keep their parameters in node attributes, which none of them touch
    (converting such a model only adds casts and makes it larger)."""
    import onnx

    if method in ("none", "auto"):
        return None
    kind = "static-int8" if method == "static-int8" else "dynamic-int8"
    nodes = quantizable_nodes(model_path, kind)
    if method == "matmul-nbits":
        nodes = [(name, op) for name, op in nodes if op == "MatMul"]
    if nodes:
        return None
    graph = onnx.load(str(model_path), load_external_data=False).graph
    attribute_ops = sorted({node.op_type for node in graph.node if node.domain == "ai.onnx.ml" and node.op_type in _ATTRIBUTE_MODELS})
    holders = f"; its parameters are in {', '.join(attribute_ops)} attributes" if attribute_ops else ""
    what = "MatMul with constant weights" if method == "matmul-nbits" else "MatMul, Gemm or Conv with constant weights"
    return f"the model has no {what}{holders}"
