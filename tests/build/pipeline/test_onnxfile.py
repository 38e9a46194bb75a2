"""The ONNX file a user brings becomes one self-contained, normalized file whose interface is read
from the graph: external data inlined (never read from outside the model's folder), opset imports
merged and brought into 13-21, ZipMap outputs replaced by their probability tensor, outputs that
collide with the task's renamed; declarations are checked against the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from slimserve.build.errors import ModelError
from slimserve.build.pipeline.onnxfile import check_declared, prepare_onnx, read_interface
from slimserve.handler.manifest import TensorSpec

from toymodels import linear_classifier

X = np.array([[0.0, 3.0], [1.0, 0.0]], dtype=np.float32)


def _toy(folder: Path, outputs: tuple[str, ...] = ("logits",)) -> Path:
    return linear_classifier(folder, outputs, model_path=folder / "model.onnx")


def _external(folder: Path, location: str = "model.onnx.data") -> Path:
    """The toy model with its weights in an external data file (what torch.onnx.export writes)."""
    path = _toy(folder)
    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location, size_threshold=0)
    return path


def _run(path: Path) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": X})


def test_external_data_is_inlined_into_one_file(tmp_path: Path) -> None:
    source = _external(tmp_path / "model")
    assert (tmp_path / "model" / "model.onnx.data").is_file()
    notes, _ = prepare_onnx(source, tmp_path / "out" / "fp32.onnx", what="source.onnx model.onnx")
    assert notes == ["external data model.onnx.data inlined: the shipped model is one file"]
    shipped = onnx.load(str(tmp_path / "out" / "fp32.onnx"), load_external_data=False)
    assert all(init.data_location == TensorProto.DEFAULT for init in shipped.graph.initializer)
    assert list((tmp_path / "out").iterdir()) == [tmp_path / "out" / "fp32.onnx"]
    np.testing.assert_allclose(_run(tmp_path / "out" / "fp32.onnx")[0], _run(source)[0])


@pytest.mark.parametrize("location", ["../secret.data", "/etc/hostname", "sub/../../secret.data"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path: Path, location: str) -> None:
    folder = tmp_path / "model"
    source = _external(folder)
    (tmp_path / "secret.data").write_bytes((folder / "model.onnx.data").read_bytes())
    model = onnx.load(str(source), load_external_data=False)
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(source))
    with pytest.raises(ModelError) as caught:
        prepare_onnx(source, tmp_path / "out.onnx", what="source.onnx model.onnx")
    assert str(caught.value) == (
        f"source.onnx model.onnx: tensor 'w' keeps its data at {location!r}, outside the model's folder "
        f"{folder.resolve()}: refused (external data must be a file beside the model)"
    )
    assert not (tmp_path / "out.onnx").exists()


def test_missing_external_data_is_named(tmp_path: Path) -> None:
    source = _external(tmp_path)
    (tmp_path / "model.onnx.data").unlink()
    with pytest.raises(ModelError, match=r"tensor 'w' keeps its data in 'model.onnx.data', which is missing from"):
        prepare_onnx(source, tmp_path / "out.onnx", what="source.onnx model.onnx")


def test_duplicate_opset_imports_are_merged_so_the_quantizer_accepts_the_model(tmp_path: Path) -> None:
    from onnxruntime.quantization import quantize_dynamic

    source = _toy(tmp_path)
    model = onnx.load(str(source))
    model.opset_import.append(helper.make_opsetid("", 17))  # what skl2onnx writes
    onnx.save(model, str(source))
    with pytest.raises(ValueError, match="Failed to find proper ai.onnx domain"):
        quantize_dynamic(str(source), str(tmp_path / "before.onnx"))
    notes, _ = prepare_onnx(source, tmp_path / "fp32.onnx", what="m")
    assert notes == ["duplicate opset imports merged (onnxruntime's quantizer needs one per domain)"]
    assert [(entry.domain, entry.version) for entry in onnx.load(str(tmp_path / "fp32.onnx")).opset_import] == [("", 17)]
    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx"))
    assert (tmp_path / "int8.onnx").is_file()


def test_old_opsets_are_converted_into_the_supported_range(tmp_path: Path) -> None:
    source = _toy(tmp_path)
    model = onnx.load(str(source))
    model.opset_import[0].version = 9  # skl2onnx's choice for forests and linear models
    onnx.save(model, str(source))
    notes, _ = prepare_onnx(source, tmp_path / "fp32.onnx", what="m")
    assert notes == ["opset 9 converted to 13 (slimserve builds opsets 13-21)"]
    assert read_interface(tmp_path / "fp32.onnx").opset == 13
    np.testing.assert_allclose(_run(tmp_path / "fp32.onnx")[0], _run(source)[0])


def _sklearn_forest(path: Path, **options: object) -> tuple[object, np.ndarray]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    iris = load_iris()
    x, y = iris.data.astype(np.float32), iris.target_names[iris.target]
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, y)
    path.write_bytes(to_onnx(forest, x[:1], options={id(forest): options} if options else None).SerializeToString())
    return forest, x


def test_zipmap_output_becomes_the_probability_tensor_and_its_classes_the_labels(tmp_path: Path) -> None:
    forest, x = _sklearn_forest(tmp_path / "forest.onnx")  # skl2onnx's defaults: ZipMap on
    with pytest.raises(ModelError, match=r"the model's output 'output_probability' is a sequence_type type, not a tensor"):
        read_interface(tmp_path / "forest.onnx")
    notes, _ = prepare_onnx(tmp_path / "forest.onnx", tmp_path / "fp32.onnx", what="m", reserved={"label", "score"})
    assert "ZipMap output 'output_probability' (a sequence of maps) replaced by the probability tensor it wraps (FP32 [-1, 3])" in notes
    interface = read_interface(tmp_path / "fp32.onnx")
    assert interface.outputs == [
        TensorSpec(name="output_label", datatype="BYTES", shape=[-1]),
        TensorSpec(name="output_probability", datatype="FP32", shape=[-1, 3]),
    ]
    assert interface.class_labels == ["setosa", "versicolor", "virginica"]
    assert interface.probability_outputs == {"output_probability"}
    labels, probabilities = ort.InferenceSession(str(tmp_path / "fp32.onnx")).run(None, {"X": x[:5]})
    np.testing.assert_allclose(probabilities, forest.predict_proba(x[:5]), atol=1e-6)


def test_outputs_named_like_the_tasks_own_are_renamed(tmp_path: Path) -> None:
    _sklearn_forest(tmp_path / "forest.onnx", zipmap=False)  # outputs: label (INT64/STRING), probabilities
    notes, renamed = prepare_onnx(tmp_path / "forest.onnx", tmp_path / "fp32.onnx", what="m", reserved={"label", "score"})
    assert renamed == {"label": "model_label"}
    assert "the model's output 'label' is served as 'model_label' (the task adds its own 'label')" in notes
    interface = read_interface(tmp_path / "fp32.onnx")
    assert interface.output_names == ["model_label", "probabilities"]
    assert interface.class_labels == ["setosa", "versicolor", "virginica"]


def test_a_file_that_is_not_onnx_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\x00not a protobuf\xff" * 10)
    with pytest.raises(ModelError, match=r"^source.onnx model.onnx: model.onnx is not an ONNX model \("):
        prepare_onnx(tmp_path / "model.onnx", tmp_path / "out.onnx", what="source.onnx model.onnx")
    with pytest.raises(ModelError, match=r"^source.onnx missing.onnx: file not found: "):
        prepare_onnx(tmp_path / "missing.onnx", tmp_path / "out.onnx", what="source.onnx missing.onnx")


@pytest.mark.parametrize(
    "declared,message",
    [
        ([TensorSpec(name="input", datatype="FP32", shape=[-1, 2])], "export.inputs: declared ['input'], the model's are ['x']"),
        ([TensorSpec(name="x", datatype="FP64", shape=[-1, 2])], "export.inputs[0] (x).datatype: declared FP64, the model's is FP32"),
        ([TensorSpec(name="x", datatype="FP32", shape=[-1, 4])], "export.inputs[0] (x).shape: declared [-1, 4], the model's is [-1, 2]"),
        ([TensorSpec(name="x", datatype="FP32", shape=[-1])], "export.inputs[0] (x).shape: declared [-1], the model's is [-1, 2]"),
    ],
)
def test_a_declaration_that_does_not_match_the_model_is_one_line_naming_the_field(
    tmp_path: Path, declared: list[TensorSpec], message: str
) -> None:
    actual = read_interface(_toy(tmp_path)).inputs
    with pytest.raises(ModelError) as caught:
        check_declared(declared, actual, "export.inputs")
    assert str(caught.value) == message


def test_a_matching_declaration_may_fix_a_free_axis(tmp_path: Path) -> None:
    actual = read_interface(_toy(tmp_path)).inputs
    assert actual == [TensorSpec(name="x", datatype="FP32", shape=[-1, 2])]
    fixed = [TensorSpec(name="x", datatype="FP32", shape=[8, 2])]
    assert check_declared(fixed, actual, "export.inputs") == fixed
    assert check_declared(None, actual, "export.inputs") == actual
