"""An ONNX model as slimserve ships it: one self-contained file onnxruntime loads, whose interface
(inputs, outputs, class labels) is read from the graph itself.

``prepare_onnx(source, destination, what=...)`` turns what a user brings (an ONNX file from any
exporter or converter, or a PyTorch export) into that file and returns one line per change, for
the build log:

- external data (``torch.onnx.export``'s default, ``<model>.onnx.data``) is read and inlined; a
  location that is absolute or leaves the model's folder is refused (the path-traversal class of
  ONNX bugs), as is a result of 2 GB or more (protobuf's limit for one file);
- duplicate opset imports (skl2onnx writes the default domain twice, which onnxruntime's
  quantizer rejects) are merged; a default-domain opset outside 13-21 is converted into that
  range (onnx's version converter) or refused;
- a ``ZipMap`` output (a sequence of maps, scikit-learn converters' default) is replaced by the
  probability tensor it wraps;
- outputs named like the ones the task adds (``label``, ``score``) are renamed ``model_<name>``;
- onnxruntime must load the result.

``read_interface(path)`` gives the inputs and outputs as TensorSpecs (-1 for a free axis), the
class labels a scikit-learn converter stored (``classlabels_*``), and the outputs the graph says
hold probabilities. ``check_declared`` compares slimserve.toml's ``[export]`` with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimserve.build.errors import ModelError
from slimserve.handler.datatypes import FLOAT_DATATYPES
from slimserve.handler.manifest import TensorSpec

OPSETS = range(13, 22)  # default-domain opsets slimserve builds (onnxruntime's tools are tested on them)
MAX_MODEL_BYTES = 2**31 - 1  # protobuf cannot serialize one message of 2 GB
ML_DOMAIN = "ai.onnx.ml"
RENAMED_PREFIX = "model_"
# Nodes that pass a tensor's values through unchanged: looking through them finds its producer.
_PASSTHROUGH = {"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}
_CLASSIFIER_OPS = {"TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier", "ZipMap"}
# Converters whose classifiers return (label, probabilities).
_SKLEARN_PRODUCERS = {"skl2onnx", "OnnxMLTools"}


@dataclass(frozen=True)
class ModelInterface:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    class_labels: list[str] | None  # the classes a converter stored (skl2onnx's classlabels_*)
    probability_outputs: frozenset[str]  # outputs the graph says hold probabilities
    opset: int | None = None  # of the default domain

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    def output(self, name: str) -> TensorSpec:
        return next(spec for spec in self.outputs if spec.name == name)


@dataclass(frozen=True)
class ServedInterface:
    """What the manifest declares for one model and task (``interface.TASKS``), and what the
    gate scores."""

    model: ModelInterface  # the model's own tensors (as [export] declares them, when it does)
    inputs: list[TensorSpec]  # the API's
    outputs: list[TensorSpec]  # the API's
    scored_output: str  # the output the gate scores (and the deploy canary compares)
    labels: list[str] | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was detected, for the build log


def _onnx_types() -> dict[int, str]:
    from onnx import TensorProto

    return {
        TensorProto.BOOL: "BOOL", TensorProto.UINT8: "UINT8", TensorProto.UINT16: "UINT16",
        TensorProto.UINT32: "UINT32", TensorProto.UINT64: "UINT64", TensorProto.INT8: "INT8",
        TensorProto.INT16: "INT16", TensorProto.INT32: "INT32", TensorProto.INT64: "INT64",
        TensorProto.FLOAT16: "FP16", TensorProto.FLOAT: "FP32", TensorProto.DOUBLE: "FP64",
        TensorProto.STRING: "BYTES",
    }  # fmt: skip


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


# --- preparing the file ---------------------------------------------------------------------------


def prepare_onnx(
    source: Path, destination: Path, *, what: str, reserved: Iterable[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """Write ``source`` as one self-contained, normalized ONNX file at ``destination``; return
    what was changed (one line each) and the outputs renamed (old -> new). ``what`` names the
    model in messages (``source.onnx model.onnx``); ``reserved``: output names the task adds.
    Raises ModelError."""
    import onnx

    if not source.is_file():
        raise ModelError(f"{what}: file not found: {source}")
    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"{what}: {source.name} is not an ONNX model ({_first_line(exc)})") from None
    notes = _inline_external_data(model, source, what)
    model, converted = _merge_opset_imports(model, what)
    notes += converted
    notes += _replace_zipmaps(model)
    renamed = _rename_outputs(model, set(reserved))
    notes += [f"the model's output {old!r} is served as {new!r} (the task adds its own {old!r})" for old, new in renamed.items()]
    size = model.ByteSize()
    if size > MAX_MODEL_BYTES:
        raise ModelError(
            f"{what}: the model is {size / 2**30:.2f} GB with its weights inlined; slimserve ships one ONNX file, "
            "which protobuf caps below 2 GB"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(destination))
    check_loads(destination, what)
    return notes, renamed


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph stores: initializers, sparse initializers, node attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _inline_external_data(model: Any, source: Path, what: str) -> list[str]:
    from onnx import TensorProto
    from onnx.external_data_helper import load_external_data_for_model

    folder = source.parent.resolve()
    locations: set[str] = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        resolved = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not resolved.is_relative_to(folder):
            raise ModelError(
                f"{what}: tensor {tensor.name!r} keeps its data at {location!r}, outside the model's folder "
                f"{folder}: refused (external data must be a file beside the model)"
            )
        if not resolved.is_file():
            raise ModelError(f"{what}: tensor {tensor.name!r} keeps its data in {location!r}, which is missing from {folder}")
        locations.add(location)
    if not locations:
        return []
    try:
        load_external_data_for_model(model, str(folder))
    except Exception as exc:  # a truncated or lying data file
        raise ModelError(f"{what}: cannot read its external data {sorted(locations)}: {_first_line(exc)}") from None
    return [f"external data {', '.join(sorted(locations))} inlined: the shipped model is one file"]


def _merge_opset_imports(model: Any, what: str) -> tuple[Any, list[str]]:
    """One import per domain (the highest version; "" and "ai.onnx" are the same domain), and a
    default-domain opset in 13-21: older or newer graphs are converted with onnx's version
    converter (skl2onnx writes opset 9 for forests and linear models)."""
    from onnx import version_converter

    versions: dict[str, int] = {}
    for opset in model.opset_import:
        domain = "" if opset.domain in ("", "ai.onnx") else opset.domain
        versions[domain] = max(versions.get(domain, 0), opset.version)
    notes = []
    if len(versions) != len(model.opset_import):
        notes.append("duplicate opset imports merged (onnxruntime's quantizer needs one per domain)")
        del model.opset_import[:]
        for domain, version in versions.items():
            entry = model.opset_import.add()
            entry.domain, entry.version = domain, version
    opset = versions.get("")
    if opset is None or opset in OPSETS:
        return model, notes
    target = OPSETS.start if opset < OPSETS.start else OPSETS.stop - 1
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as exc:  # onnx raises RuntimeError / ConvertError for ops it cannot adapt
        raise ModelError(
            f"{what}: opset {opset} is outside the supported {OPSETS.start}-{OPSETS.stop - 1} and onnx's version "
            f"converter cannot bring it to {target} ({_first_line(exc)}); export or convert it with opset {target}"
        ) from None
    notes.append(f"opset {opset} converted to {target} (slimserve builds opsets {OPSETS.start}-{OPSETS.stop - 1})")
    return converted, notes


def _replace_zipmaps(model: Any) -> list[str]:
    """ZipMap (probabilities as a sequence of {class: probability} maps) -> the probability tensor."""
    from onnx import TensorProto, helper

    outputs = {output.name: output for output in model.graph.output}
    notes = []
    for index, node in enumerate(list(model.graph.node)):
        if node.op_type != "ZipMap" or node.output[0] not in outputs:
            continue
        labels = [attribute for attribute in node.attribute if attribute.name.startswith("classlabels_")]
        classes = len(labels[0].ints or labels[0].strings) if labels else None
        replacement = helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name or f"zipmap_{index}")
        model.graph.node.remove(node)
        model.graph.node.insert(index, replacement)
        output = outputs[node.output[0]]
        output.type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, ["N", classes]))
        # The class labels live on; keep them where read_interface finds them.
        if labels:
            entry = model.metadata_props.add()
            entry.key = "slimserve.classlabels"
            entry.value = "\n".join(str(v) for v in (labels[0].ints or [s.decode() for s in labels[0].strings]))
        notes.append(
            f"ZipMap output {output.name!r} (a sequence of maps) replaced by the probability tensor it wraps "
            f"(FP32 [-1, {classes if classes is not None else -1}])"
        )
    return notes


def _rename_outputs(model: Any, reserved: set[str]) -> dict[str, str]:
    """Outputs named like the task's own (``label``, ``score``) become ``model_<name>``."""
    taken = {output.name for output in model.graph.output} | {name for node in model.graph.node for name in node.output}
    renamed = {}
    for output in model.graph.output:
        old = output.name
        if old not in reserved:
            continue
        new = RENAMED_PREFIX + old
        while new in taken:
            new = "_" + new
        _rename_tensor(model.graph, old, new)
        taken.add(new)
        renamed[old] = new
    return renamed


def _rename_tensor(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                _rename_tensor(subgraph, old, new)
    for info in [*graph.output, *graph.value_info]:
        if info.name == old:
            info.name = new


def check_loads(path: Path, what: str) -> None:
    """onnxruntime must create a session for the file, as the handler will."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph / NotImplemented
        raise ModelError(f"{what}: onnxruntime cannot load the model: {_first_line(exc)}") from None


# --- reading the interface -----------------------------------------------------------------------


def read_interface(path: Path) -> ModelInterface:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    stored = {init.name for init in graph.initializer}  # older IRs list initializers as inputs too
    inputs = [_spec(info, "input") for info in graph.input if info.name not in stored]
    outputs = [_spec(info, "output") for info in graph.output]
    producers = {name: node for node in graph.node for name in node.output}
    return ModelInterface(
        inputs=inputs,
        outputs=outputs,
        class_labels=_class_labels(model, producers),
        probability_outputs=frozenset(_probability_outputs(model, outputs, producers)),
        opset=next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None),
    )


def _spec(info: Any, kind: str) -> TensorSpec:
    value_type = info.type
    if not value_type.HasField("tensor_type"):
        which = value_type.WhichOneof("value")
        raise ModelError(
            f"the model's {kind} {info.name!r} is a {which} type, not a tensor; slimserve serves tensors "
            "(scikit-learn converters: pass options={id(model): {'zipmap': False}}, or keep the default: slimserve "
            "replaces ZipMap outputs)"
        )
    tensor = value_type.tensor_type
    datatype = _onnx_types().get(tensor.elem_type)
    if datatype is None:
        from onnx import TensorProto

        raise ModelError(
            f"the model's {kind} {info.name!r} is {TensorProto.DataType.Name(tensor.elem_type)}, which the Open "
            "Inference Protocol cannot carry; cast it in the graph"
        )
    if not tensor.HasField("shape"):
        raise ModelError(f"the model's {kind} {info.name!r} declares no shape (rank); re-export it with one")
    shape = [dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else -1 for dim in tensor.shape.dim]
    return TensorSpec(name=info.name, datatype=datatype, shape=shape)


def _producer(name: str, producers: dict[str, Any]) -> Any:
    node = producers.get(name)
    while node is not None and node.op_type in _PASSTHROUGH and node.input:
        node = producers.get(node.input[0])
    return node


def _class_labels(model: Any, producers: dict[str, Any]) -> list[str] | None:
    from onnx import numpy_helper

    for entry in model.metadata_props:
        if entry.key == "slimserve.classlabels":
            return entry.value.split("\n")
    found: list[list[str]] = []
    for node in model.graph.node:
        if node.domain == ML_DOMAIN and node.op_type in _CLASSIFIER_OPS:
            for attribute in node.attribute:
                if attribute.name == "classlabels_strings" and attribute.strings:
                    found.append([value.decode("utf-8") for value in attribute.strings])
                elif attribute.name == "classlabels_int64s" and attribute.ints:
                    found.append([str(value) for value in attribute.ints])
    if not found:
        # skl2onnx without ZipMap, for models without a classifier op (an MLP): the label output
        # is ArrayFeatureExtractor(<classes constant>, ArgMax(probabilities)).
        constants = {init.name: init for init in model.graph.initializer}
        for output in model.graph.output:
            node = _producer(output.name, producers)
            if node is not None and node.op_type == "ArrayFeatureExtractor" and node.input[0] in constants:
                values = numpy_helper.to_array(constants[node.input[0]]).ravel().tolist()
                found.append([value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values])
    return found[0] if found and all(labels == found[0] for labels in found) else None


def _probability_outputs(model: Any, outputs: list[TensorSpec], producers: dict[str, Any]) -> set[str]:
    """Float outputs a final Softmax produces, and the float output of a scikit-learn converter's
    classifier (its (label, probabilities) pair)."""
    found = set()
    labelled = any(spec.datatype in ("INT64", "BYTES") and len(spec.shape) == 1 for spec in outputs)
    classifier = model.producer_name in _SKLEARN_PRODUCERS and labelled
    for spec in outputs:
        if spec.datatype not in FLOAT_DATATYPES:
            continue
        node = _producer(spec.name, producers)
        if (node is not None and node.op_type == "Softmax") or classifier:
            found.add(spec.name)
    return found


# --- declared versus actual -----------------------------------------------------------------------


def check_declared(declared: list[TensorSpec] | None, actual: list[TensorSpec], what: str) -> list[TensorSpec]:
    """``[export]``'s declaration against the model's own: names, datatypes, ranks, fixed sizes (a
    declared -1 matches any size; a declared size may fix a free axis). Returns what the API
    declares: the declaration when given, else the model's. Raises ModelError on a mismatch,
    naming the field, the declared and the actual value."""
    if declared is None:
        return list(actual)
    if [spec.name for spec in declared] != [spec.name for spec in actual]:
        raise ModelError(
            f"{what}: declared {[spec.name for spec in declared]}, the model's are {[spec.name for spec in actual]}"
        )
    for index, (mine, theirs) in enumerate(zip(declared, actual)):
        field = f"{what}[{index}] ({mine.name})"
        if mine.datatype != theirs.datatype:
            raise ModelError(f"{field}.datatype: declared {mine.datatype}, the model's is {theirs.datatype}")
        fits = len(mine.shape) == len(theirs.shape) and all(
            want == -1 or have == -1 or want == have for want, have in zip(mine.shape, theirs.shape)
        )
        if not fits:
            raise ModelError(f"{field}.shape: declared {mine.shape}, the model's is {theirs.shape}")
    return list(declared)
