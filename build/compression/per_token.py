"""``compression.method = "per-token-int8"``: int8 for BERT-family encoders that keeps their
meaning, in standard ONNX ops plus onnxruntime's ``com.microsoft.MatMulIntegerToFloat``.

Why: onnxruntime's dynamic int8 (DynamicQuantizeLinear) gives a whole activation tensor one
scale. In BERT-family encoders a few channels of the [CLS] token reach 10-30x the others, so
that token sets the scale of every token, and in a padded batch the most extreme text sets it
for every other text: MiniLM's worst unseen sentence fell to cosine 0.957 (0.95 in batches).
Here every token row is quantized with its own asymmetric 8-bit scale, computed in the graph,
for the MatMuls whose inputs carry those outliers; measured on 1,013 unseen texts: min cosine
0.9946 alone and 0.9945 in padded batches of 32 (/work/research/int8/REPORT.md, BENCHMARKS.md).

The MatMuls are found by the graph's structure, never by names:

- fed by a layer norm (LayerNormalization, its Skip/Simplified variants, or the decomposed
  ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add pattern): x -> per-row shift by its minimum,
  ``s = (max - min) / 255``, ``q = QuantizeLinear((x - min) / s)``, then
  ``MatMulIntegerToFloat(q, W, s, w_scale) + min * colsum(W)``. MatMuls that share such an
  input (the attention's Q, K and V) become one GEMM on concatenated weights and a Split;
- fed by a GELU (Gelu/FastGelu ops, or the Erf/Tanh formula): the shift is the constant
  GELU_SHIFT (GELU is never below -0.17), and its correction is folded into the bias Add;
- every other weighted MatMul (the attention output projection, whose input has no outliers)
  gets onnxruntime's ``quantize_dynamic`` with the same weight settings;
- large embedding tables (a Gather on a float [rows >= EMBEDDING_ROWS, d] constant): u8 with
  one scale and offset per row.

Weights are symmetric per output channel (or per tensor), full s8 range [-127, 127] unless
``reduce_range`` ([-64, 64]). Full-range weights are exact on every x86-64 host only with the
session option ``session.x64quantprecision = 1`` at optimization level extended: the build
derives it from the shipped model and the manifest carries it (build/gate/portability.py).
onnxruntime >= 1.32's MatMulIntegerToFloat takes the per-row ``a_scale`` [.., rows, 1];
the gate would catch an onnxruntime that does not (an error or a collapsed cosine).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.errors import CompressionError

# Exact GELU's minimum is -0.16997 (at x = -0.75); the tanh approximation's is about the same.
GELU_SHIFT = 0.17
# A Gather on a float table with at least this many rows is a vocabulary embedding (position
# and token-type tables are smaller and cheap to keep in fp32).
EMBEDDING_ROWS = 1024
_LAYER_NORMS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization"}
_GELUS = {"Gelu", "FastGelu", "BiasGelu", "QuickGelu"}
_PREFIX = "slimserve_pt"


@dataclass
class _Graph:
    """An ONNX graph with the lookups the rewrite needs; new nodes and constants are collected."""

    model: Any
    constants: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    consumers: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        graph = self.model.graph
        self.constants = {tensor.name: tensor for tensor in graph.initializer}
        for node in graph.node:
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.opset = next((e.version for e in self.model.opset_import if e.domain in ("", "ai.onnx")), 13)

    def array(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.model.graph.initializer.append(numpy_helper.from_array(value, name))
        self.constants[name] = self.model.graph.initializer[-1]
        return name

    def weight_of(self, node: Any) -> np.ndarray | None:
        """The constant 2-D float weight of a MatMul (input B), else None."""
        if node.op_type != "MatMul" or len(node.input) < 2:
            return None
        weight = self.array(node.input[1])
        return weight if weight is not None and weight.ndim == 2 and weight.dtype == np.float32 else None


def _is_layer_norm_output(graph: _Graph, tensor: str) -> bool:
    node = graph.producer.get(tensor)
    if node is None:
        return False
    if node.op_type in _LAYER_NORMS:
        return node.output[0] == tensor
    # Decomposed (opset < 17 exports): Add(Mul(Div(x - mean, Sqrt(var + eps)), gamma), beta).
    if node.op_type != "Add":
        return False
    chain = ("Mul", "Div")
    current = node
    for op in chain:
        current = next((graph.producer[i] for i in current.input if i in graph.producer and graph.producer[i].op_type == op), None)
        if current is None:
            return False
    return any(graph.producer.get(i) is not None and graph.producer[i].op_type == "Sqrt" for i in current.input)


def _is_gelu_output(graph: _Graph, tensor: str) -> bool:
    node = graph.producer.get(tensor)
    if node is None:
        return False
    if node.op_type in _GELUS:
        return True
    # x * 0.5 * (1 + erf(x / sqrt 2)) and the tanh form: an Erf or Tanh a few Mul/Add back.
    frontier, seen = [node], 0
    while frontier and seen < 8:
        current = frontier.pop()
        seen += 1
        if current.op_type in ("Erf", "Tanh"):
            return True
        if current.op_type in ("Mul", "Add"):
            frontier += [graph.producer[i] for i in current.input if i in graph.producer]
    return False


def find_targets(model: Any, excluded: Iterable[str] = ()) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """The per-token MatMuls, grouped by their shared input: (fed by a layer norm, fed by a
    GELU). Nodes named in ``excluded`` stay fp32."""
    graph = _Graph(model)
    skip = set(excluded)
    normalized: dict[str, list[Any]] = {}
    gelu: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.name in skip or graph.weight_of(node) is None:
            continue
        if _is_layer_norm_output(graph, node.input[0]):
            normalized.setdefault(node.input[0], []).append(node)
        elif _is_gelu_output(graph, node.input[0]):
            gelu.setdefault(node.input[0], []).append(node)
    return normalized, gelu


def unsupported(model_path: Path) -> str | None:
    """Why ``per-token-int8`` cannot handle this model, or None when it can."""
    import onnx

    normalized, _ = find_targets(onnx.load(str(model_path), load_external_data=False))
    return None if normalized else _none_found(model_path.name)


def _none_found(name: str) -> str:
    return (
        "compression.method = 'per-token-int8' handles BERT-family encoders (MatMuls with constant weights fed by "
        f"a layer norm) and found none in {name}; use dynamic-int8 for this model"
    )


def quantize_weight(weight: np.ndarray, *, per_channel: bool, reduce_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] float -> (s8 [K, N], scale [N] or scalar): symmetric, [-127, 127] or [-64, 64]."""
    qmax = 64 if reduce_range else 127
    largest = np.abs(weight).max(axis=0) if per_channel else np.abs(weight).max()
    scale = (np.maximum(largest, 1e-12) / qmax).astype(np.float32)
    return np.clip(np.round(weight / scale), -qmax, qmax).astype(np.int8), scale


class _Rewriter:
    def __init__(self, graph: _Graph, per_channel: bool, reduce_range: bool) -> None:
        self.graph, self.per_channel, self.reduce_range = graph, per_channel, reduce_range
        self.count = 0
        g = graph
        self.one = g.constant(f"{_PREFIX}_one", np.array(1.0, np.float32))
        self.zero_u8 = g.constant(f"{_PREFIX}_zero_u8", np.array(0, np.uint8))
        self.eps = g.constant(f"{_PREFIX}_eps", np.array(1e-8, np.float32))
        self.inv255 = g.constant(f"{_PREFIX}_inv255", np.array(1 / 255, np.float32))
        self.shift = g.constant(f"{_PREFIX}_gelu_shift", np.array(GELU_SHIFT, np.float32))
        self.last_axis = g.constant(f"{_PREFIX}_last_axis", np.array([-1], np.int64))

    def _reduce(self, op: str, source: str, output: str) -> Any:
        from onnx import helper

        if self.graph.opset >= 18:  # axes became an input in opset 18
            return helper.make_node(op, [source, self.last_axis], [output], name=output, keepdims=1)
        return helper.make_node(op, [source], [output], name=output, axes=[-1], keepdims=1)

    def group(self, source: str, nodes: list[Any], gelu: bool) -> list[Any]:
        """The nodes that replace ``nodes`` (MatMuls sharing the input ``source``)."""
        from onnx import helper

        g, self.count = self.graph, self.count + 1
        tag = f"{_PREFIX}{self.count}"
        made = []
        if gelu:
            made += [helper.make_node("Add", [source, self.shift], [f"{tag}_xs"], name=f"{tag}_shift"),
                     self._reduce("ReduceMax", f"{tag}_xs", f"{tag}_range")]
        else:
            made += [self._reduce("ReduceMin", source, f"{tag}_min"), self._reduce("ReduceMax", source, f"{tag}_max"),
                     helper.make_node("Sub", [f"{tag}_max", f"{tag}_min"], [f"{tag}_range"], name=f"{tag}_range"),
                     helper.make_node("Sub", [source, f"{tag}_min"], [f"{tag}_xs"], name=f"{tag}_shift")]
        made += [helper.make_node("Max", [f"{tag}_range", self.eps], [f"{tag}_range_safe"], name=f"{tag}_range_safe"),
                 helper.make_node("Mul", [f"{tag}_range_safe", self.inv255], [f"{tag}_scale"], name=f"{tag}_scale"),
                 helper.make_node("Div", [f"{tag}_xs", f"{tag}_scale"], [f"{tag}_scaled"], name=f"{tag}_scaled"),
                 helper.make_node("QuantizeLinear", [f"{tag}_scaled", self.one, self.zero_u8], [f"{tag}_q"], name=f"{tag}_q")]
        weights = [g.weight_of(node) for node in nodes]
        weight = np.concatenate(weights, axis=1)
        quantized, scale = quantize_weight(weight, per_channel=self.per_channel, reduce_range=self.reduce_range)
        # Column sums of the dequantized weight: what the shift of x adds to every output.
        colsum = (quantized.astype(np.float64) * scale.astype(np.float64)).sum(axis=0)
        merged = len(nodes) > 1
        output = f"{tag}_y" if merged else nodes[0].output[0]
        inputs = [f"{tag}_q", g.constant(f"{tag}_w", quantized), f"{tag}_scale", g.constant(f"{tag}_w_scale", scale), self.zero_u8]
        product = f"{tag}_product"
        made.append(helper.make_node("MatMulIntegerToFloat", inputs, [product], name=f"{tag}_matmul", domain="com.microsoft"))
        if gelu:  # x = xs - GELU_SHIFT: subtract GELU_SHIFT * colsum, in the bias Add when there is one
            correction = (-GELU_SHIFT * colsum).astype(np.float32)
            if not merged and self._fold_into_bias(nodes[0], correction, tag):
                made[-1].output[0] = output
            else:
                made.append(helper.make_node("Add", [product, g.constant(f"{tag}_shift_fix", correction)], [output], name=f"{tag}_fix"))
        else:  # x = xs + min: add min * colsum, row by row
            made += [helper.make_node("Mul", [f"{tag}_min", g.constant(f"{tag}_colsum", colsum.astype(np.float32))], [f"{tag}_fix"], name=f"{tag}_fix"),
                     helper.make_node("Add", [product, f"{tag}_fix"], [output], name=f"{tag}_fixed")]
        if merged:
            sizes = g.constant(f"{tag}_sizes", np.array([w.shape[1] for w in weights], np.int64))
            made.append(helper.make_node("Split", [output, sizes], [node.output[0] for node in nodes], name=f"{tag}_split", axis=-1))
        return made

    def _fold_into_bias(self, node: Any, correction: np.ndarray, tag: str) -> bool:
        """Add ``correction`` to the constant bias of the Add right after ``node``, if any."""
        g = self.graph
        for user in g.consumers.get(node.output[0], []):
            if user.op_type != "Add":
                continue
            for index, name in enumerate(user.input):
                bias = g.array(name)
                if bias is not None and bias.shape == correction.shape:
                    user.input[index] = g.constant(f"{tag}_bias", (bias.astype(np.float64) + correction).astype(np.float32))
                    return True
        return False

    def embedding(self, node: Any) -> list[Any] | None:
        """u8 rows with a scale and an offset each for a vocabulary Gather; None to keep it."""
        from onnx import TensorProto, helper

        g = self.graph
        table = g.array(node.input[0])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if table is None or table.ndim != 2 or table.dtype != np.float32 or table.shape[0] < EMBEDDING_ROWS or axis != 0:
            return None
        values = table.astype(np.float64)
        low, high = np.minimum(values.min(axis=1), 0), np.maximum(values.max(axis=1), 0)
        scale = np.maximum(high - low, 1e-12) / 255
        quantized = np.clip(np.round((values - low[:, None]) / scale[:, None]), 0, 255).astype(np.uint8)
        self.count += 1
        tag, ids, out = f"{_PREFIX}{self.count}", node.input[1], node.output[0]
        rows = g.constant(f"{tag}_rows", quantized)
        scales = g.constant(f"{tag}_row_scale", scale.astype(np.float32)[:, None])
        offsets = g.constant(f"{tag}_row_offset", low.astype(np.float32)[:, None])
        return [
            helper.make_node("Gather", [rows, ids], [f"{tag}_u8"], name=f"{tag}_gather"),
            helper.make_node("Cast", [f"{tag}_u8"], [f"{tag}_f"], name=f"{tag}_cast", to=TensorProto.FLOAT),
            helper.make_node("Gather", [scales, ids], [f"{tag}_s"], name=f"{tag}_gather_scale"),
            helper.make_node("Gather", [offsets, ids], [f"{tag}_o"], name=f"{tag}_gather_offset"),
            helper.make_node("Mul", [f"{tag}_f", f"{tag}_s"], [f"{tag}_fs"], name=f"{tag}_dequant"),
            helper.make_node("Add", [f"{tag}_fs", f"{tag}_o"], [out], name=f"{tag}_offset"),
        ]


def rewrite(source: Path, destination: Path, *, per_channel: bool, reduce_range: bool, excluded: Iterable[str] = (),
            embeddings: bool = True) -> dict[str, Any]:
    """Per-token int8 MatMuls and per-row u8 embeddings (not the other MatMuls: ``compress``
    hands those to quantize_dynamic). Returns the counts for the manifest."""
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    skip = set(excluded)
    normalized, gelu = find_targets(model, skip)
    if not normalized:
        raise CompressionError(_none_found(source.name))
    graph = _Graph(model)
    rewriter = _Rewriter(graph, per_channel, reduce_range)
    replaced: dict[int, list[Any]] = {}
    removed: set[int] = set()
    for groups, is_gelu in ((normalized, False), (gelu, True)):
        for tensor, nodes in groups.items():
            replaced[id(nodes[0])] = rewriter.group(tensor, nodes, is_gelu)
            removed.update(id(node) for node in nodes)
    tables = 0
    for node in model.graph.node:
        if embeddings and node.op_type == "Gather" and node.name not in skip:
            made = rewriter.embedding(node)
            if made is not None:
                replaced[id(node)], tables = made, tables + 1
                removed.add(id(node))
    order: list[Any] = []
    for node in model.graph.node:
        order += replaced.get(id(node), [])
        if id(node) not in removed:
            order.append(node)
    del model.graph.node[:]
    model.graph.node.extend(order)
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    kept = [tensor for tensor in model.graph.initializer if tensor.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    del model.graph.value_info[:]  # shapes of rewritten tensors would be stale; nothing needs them
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(destination))
    return {
        "per_token_matmuls": sum(len(nodes) for nodes in normalized.values()) + sum(len(nodes) for nodes in gelu.values()),
        "merged_groups": sum(1 for nodes in normalized.values() if len(nodes) > 1),
        "gelu_inputs": len(gelu),
        "embedding_tables_u8": tables,
    }
