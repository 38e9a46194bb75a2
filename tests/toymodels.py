"""Toy ONNX models built with onnx.helper, as test fixtures (the MLServer way): each comes with
a manifest, so the real handler loads them exactly like a build output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from slimserve.build.pipeline.bundle import sha256_file
from slimserve.handler.manifest import MANIFEST_SCHEMA, Manifest

# V2 datatype -> ONNX element type, for every type onnxruntime's CPU Identity supports.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def _save(model: onnx.ModelProto, folder: Path, name: str, inputs: list[dict], outputs: list[dict] | None = None, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    manifest = Manifest(
        schema=MANIFEST_SCHEMA,
        name=name,
        model={"file": "model.onnx", "sha256": sha256_file(path), "bytes": path.stat().st_size},
        inputs=inputs,
        outputs=outputs,
        **extra,
    )
    (folder / "manifest.json").write_text(manifest.to_json())
    return folder


def identity_all_types(folder: Path) -> Path:
    """x_<type> -> y_<type> = Identity, shape [-1, 2] for every datatype."""
    nodes, graph_inputs, graph_outputs, inputs, outputs = [], [], [], [], []
    for datatype, element in ONNX_TYPES.items():
        key = datatype.lower()
        graph_inputs.append(helper.make_tensor_value_info(f"x_{key}", element, ["batch", 2]))
        graph_outputs.append(helper.make_tensor_value_info(f"y_{key}", element, ["batch", 2]))
        nodes.append(helper.make_node("Identity", [f"x_{key}"], [f"y_{key}"]))
        inputs.append({"name": f"x_{key}", "datatype": datatype, "shape": [-1, 2]})
        outputs.append({"name": f"y_{key}", "datatype": datatype, "shape": [-1, 2]})
    graph = helper.make_graph(nodes, "identity_all_types", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, folder, "identity", inputs, outputs)


def reshape_to_four(folder: Path) -> Path:
    """x (FP32, [-1, -1]) reshaped to [2, 2]: valid by the declared shape, but onnxruntime
    fails at run time unless x has exactly 4 elements (a model that raises inside ORT)."""
    shape = helper.make_tensor("target", TensorProto.INT64, [2], np.array([2, 2], dtype=np.int64))
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "target"], ["y"])],
        "reshape_to_four",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(
        model, folder, "reshape",
        [{"name": "x", "datatype": "FP32", "shape": [-1, -1]}],
        [{"name": "y", "datatype": "FP32", "shape": [2, 2]}],
    )


def tabular_classifier(folder: Path, *, features: int = 8, classes: int = 3, background_rows: int = 6, seed: int = 0) -> Path:
    """x (FP32 [-1, features]) -> tanh MLP -> logits [-1, classes], a classification model with a
    background.npy and an ``explain`` section: tabular, small enough for exact Kernel SHAP."""
    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.normal(size=(features, 16)), "b1": rng.normal(size=16) * 0.1,
        "w2": rng.normal(size=(16, classes)), "b2": rng.normal(size=classes) * 0.1,
    }
    initializers = [helper.make_tensor(name, TensorProto.FLOAT, list(value.shape), value.astype(np.float32).ravel())
                    for name, value in weights.items()]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Tanh", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tabular_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "background.npy", rng.normal(size=(background_rows, features)).astype(np.float32))
    return _save(
        model, folder, "tabular",
        [{"name": "x", "datatype": "FP32", "shape": [-1, features]}],
        [
            {"name": "logits", "datatype": "FP32", "shape": [-1, classes]},
            {"name": "label", "datatype": "BYTES", "shape": [-1, -1]},
            {"name": "score", "datatype": "FP32", "shape": [-1, -1]},
        ],
        task="classification",
        labels=[f"class{index}" for index in range(classes)],
        files={"background.npy": sha256_file(folder / "background.npy")},
        explain={"methods": ["kernel-shap", "shapley-sampling", "leave-one-out"], "background": "background.npy"},
    )


def linear_classifier(
    folder: Path,
    outputs: tuple[str, ...] = ("logits",),
    *,
    name: str = "toy",
    weights: np.ndarray | None = None,
    model_path: Path | None = None,
    added_outputs: tuple[dict, ...] = (),
    **manifest: object,
) -> Path:
    """x (FP32 [-1, 2]) @ weights (2 x 3) -> ``logits``; ``probabilities`` = Softmax(logits);
    ``label`` = ArgMax (INT64 [-1]); ``least`` = ArgMin (a model's own prediction that is not its
    most probable class, as an SVC's can be). ``outputs`` picks which of them the graph returns (renamed
    with ``name:graph_name`` to use another name); ``manifest`` holds the manifest's other fields
    (task, labels, task_options...), ``added_outputs`` the API outputs the task adds. With
    ``model_path`` the file is written there and no manifest is made (an ONNX source for a build)."""
    w = weights if weights is not None else np.array([[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["logits_"]),
        helper.make_node("Identity", ["logits_"], ["logits"]),
        helper.make_node("Softmax", ["logits_"], ["probabilities"], axis=-1),
        helper.make_node("ArgMax", ["logits_"], ["argmax"], axis=-1, keepdims=0),
        helper.make_node("Identity", ["argmax"], ["label"]),
        helper.make_node("ArgMin", ["logits_"], ["least"], axis=-1, keepdims=0),
    ]
    kinds = {
        "logits": (TensorProto.FLOAT, ["batch", w.shape[1]]),
        "probabilities": (TensorProto.FLOAT, ["batch", w.shape[1]]),
        "label": (TensorProto.INT64, ["batch"]),
        "least": (TensorProto.INT64, ["batch"]),  # a "prediction" that is not the most probable class
    }
    graph_outputs, specs = [], []
    for entry in outputs:
        kind, _, renamed = entry.partition(":")
        output_name = renamed or kind
        if renamed:
            nodes.append(helper.make_node("Identity", [kind], [renamed]))
        element, shape = kinds[kind]
        graph_outputs.append(helper.make_tensor_value_info(output_name, element, shape))
        specs.append({"name": output_name, "datatype": "INT64" if kind in ("label", "least") else "FP32", "shape": [-1] if kind in ("label", "least") else [-1, w.shape[1]]})
    graph = helper.make_graph(
        nodes, "linear_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", w.shape[0]])],
        graph_outputs,
        initializer=[numpy_helper.from_array(w.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if model_path is not None:
        onnx.checker.check_model(model)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(model_path))
        return model_path
    return _save(model, folder, name, [{"name": "x", "datatype": "FP32", "shape": [-1, w.shape[0]]}], [*specs, *added_outputs], **manifest)


# --- weight edits on the digits MLP export: same fp32 function, hard to quantize -----------


def _edit_weights(source: Path, destination: Path, edit) -> Path:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    initializers = {init.name: init for init in model.graph.initializer}
    nodes = {node.name: node for node in model.graph.node}

    def get(node: str, index: int) -> np.ndarray:
        return numpy_helper.to_array(initializers[nodes[node].input[index]]).astype(np.float64)

    def put(node: str, index: int, array: np.ndarray) -> None:
        name = nodes[node].input[index]
        initializers[name].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))

    edit(get, put)
    onnx.save(model, str(destination))
    return destination


def outlier_model(source: Path, destination: Path, scale: float = 1e3) -> Path:
    def edit(get, put):
        w0, b0, w2 = get("/0/Gemm", 1), get("/0/Gemm", 2), get("/2/Gemm", 1)  # Gemm weights are [out, in]
        j = int(np.argmax(np.abs(w0).sum(axis=1)))
        w0[j] *= scale
        b0[j] *= scale
        w2[:, j] /= scale
        put("/0/Gemm", 1, w0), put("/0/Gemm", 2, b0), put("/2/Gemm", 1, w2)

    return _edit_weights(source, destination, edit)


def offset_model(source: Path, destination: Path, offset: float = 1e4) -> Path:
    def edit(get, put):
        w4 = get("/4/Gemm", 1)
        put("/2/Gemm", 2, get("/2/Gemm", 2) + offset)
        put("/4/Gemm", 2, get("/4/Gemm", 2) - w4.sum(axis=1) * offset)

    return _edit_weights(source, destination, edit)


# The smallest valid slimserve.toml (an ONNX source), for config tests.
def tiny_encoder(
    path: Path, *, hidden: int = 32, ffn: int = 64, vocab: int = 1100, layers: int = 1, opset: int = 17,
    decomposed_layer_norm: bool = False, seed: int = 0,
) -> Path:
    """A BERT-shaped encoder small enough for any test: token ids -> vocabulary Gather ->
    layer norm -> per layer (Q, K, V MatMuls on one input, single-head attention, output
    projection, residual, layer norm, FFN in, erf GELU, FFN out, residual, layer norm) -> mean
    over tokens [batch, hidden]. Node names are ``n0``, ``n1``...: whatever finds its MatMuls
    must read the structure, not BERT's names. ``decomposed_layer_norm`` spells the layer norms
    out as opset < 17 exports do. A few hidden channels get large weights, as real encoders
    have outlier channels."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []

    def const(value: np.ndarray) -> str:
        name = f"c{len(initializers)}"
        initializers.append(onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attributes) -> str:
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"n{len(nodes)}", **attributes))
        return out

    def dense(x: str, n_in: int, n_out: int) -> str:
        weight = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
        return node("Add", [node("MatMul", [x, const(weight)]), const(rng.normal(0, 0.1, n_out).astype(np.float32))])

    def layer_norm(x: str) -> str:
        gamma, beta = np.ones(hidden, np.float32), np.zeros(hidden, np.float32)
        gamma[:2] = 12.0  # outlier channels, as in real encoders
        if not decomposed_layer_norm:
            return node("LayerNormalization", [x, const(gamma), const(beta)], axis=-1)
        mean = node("ReduceMean", [x], axes=[-1])
        centred = node("Sub", [x, mean])
        variance = node("ReduceMean", [node("Pow", [centred, const(np.float32(2))])], axes=[-1])
        normed = node("Div", [centred, node("Sqrt", [node("Add", [variance, const(np.float32(1e-12))])])])
        return node("Add", [node("Mul", [normed, const(gamma)]), const(beta)])

    table = rng.normal(0, 1, (vocab, hidden)).astype(np.float32)
    x = layer_norm(node("Gather", [const(table), "input_ids"]))
    for _ in range(layers):
        q, k, v = (dense(x, hidden, hidden) for _ in range(3))
        scores = node("Div", [node("MatMul", [q, node("Transpose", [k], perm=[0, 2, 1])]), const(np.float32(np.sqrt(hidden)))])
        context = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        x = layer_norm(node("Add", [dense(context, hidden, hidden), x]))
        inner = dense(x, hidden, ffn)
        erf = node("Erf", [node("Div", [inner, const(np.float32(np.sqrt(2)))])])
        gelu = node("Mul", [node("Mul", [inner, node("Add", [erf, const(np.float32(1))])]), const(np.float32(0.5))])
        x = layer_norm(node("Add", [dense(gelu, ffn, hidden), x]))
    nodes.append(helper.make_node("ReduceMean", [x], ["embedding"], name=f"n{len(nodes)}", axes=[1], keepdims=0))
    graph = helper.make_graph(
        nodes, "tiny_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if opset >= 18:  # Reduce* take their axes as an input from opset 18 on
        from onnx import version_converter

        model = version_converter.convert_version(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), opset)
        model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


MINIMAL_CONFIG = """
name = "toy"
[source]
onnx = "model.onnx"
[export]
inputs = [{ name = "x", datatype = "FP32", shape = [-1, 4] }]
outputs = [{ name = "y", datatype = "FP32", shape = [-1, 2] }]
[validation]
data = "data.py:heldout"
"""
