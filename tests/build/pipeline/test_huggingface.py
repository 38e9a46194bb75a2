"""``[source] huggingface``: tiny transformers / sentence-transformers folders made in the test run
(tests/hfzoo.py), exported, gated, built and served by ``slimserve local``; and the one-sentence
refusals of folders that would need a download or remote code."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import hfzoo
import httpx
import numpy as np
import pytest
from filelock import FileLock

from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.run import running
from slimserve.build.pipeline.huggingface import derive_config

from localkit import CACHE_DIR, quiet_console

HELDOUT = 48  # texts per build: the gate's held-out set and what slimserve local is asked
DATA_PY = '''from pathlib import Path

import numpy as np


def heldout():
    texts = Path(__file__).with_name("heldout.txt").read_text(encoding="utf-8").splitlines()
    return {"text": np.array(texts, dtype=object)}, None
'''


def _project(folder: Path, model: Path, task: str, options: str = "") -> Path:
    """A project folder with the smallest slimserve.toml for ``model`` (docs/huggingface.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    metric = "cosine" if task == "embedding" else "accuracy"
    (folder / "slimserve.toml").write_text(
        f'name = "{folder.name}"\ntask = "{task}"\n'
        + (f"[task_options]\n{options}\n" if options else "")
        + f'[source]\nhuggingface = "{model}"\n'
        + f'[validation]\ndata = "data.py:heldout"\nmetric = "{metric}"\nbatch_size = 16\n',
        encoding="utf-8",
    )
    (folder / "data.py").write_text(DATA_PY, encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- refusals (fast)


def _config(tmp_path: Path, files: dict[str, str], task: str = "classification"):
    model = tmp_path / "model"
    model.mkdir()
    for name, text in files.items():
        (model / name).write_text(text, encoding="utf-8")
    return load_config(_project(tmp_path / "project", model, task))


BERT = json.dumps({"model_type": "bert", "architectures": ["BertForSequenceClassification"], "id2label": {"0": "no", "1": "yes"}})


def test_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, {"README.md": "hi"})
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == f"source.huggingface: {tmp_path / 'model'} has no config.json (not a Hugging Face model folder)"


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    config = load_config(_project(tmp_path / "project", tmp_path / "absent", "classification"))
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == f"source.huggingface: folder not found: {tmp_path / 'absent'}"


def test_missing_weights_are_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, {"config.json": BERT, "pytorch_model.bin": "", "tokenizer.json": "{}"})
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == (
        f"source.huggingface: {tmp_path / 'model'} has no model.safetensors; slimserve never downloads weights "
        "(save the model there with save_pretrained; pickled pytorch_model.bin files are not loaded)"
    )


def test_missing_tokenizer_json_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, {"config.json": BERT, "model.safetensors": "", "vocab.txt": "[PAD]"})
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == (
        f"source.huggingface: {tmp_path / 'model'} has no tokenizer.json (the fast tokenizer the handler runs); "
        "save it there with AutoTokenizer.from_pretrained(...).save_pretrained(folder)"
    )


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    unknown = json.dumps({"model_type": "flux-capacitor", "architectures": ["FluxForSequenceClassification"]})
    config = _config(tmp_path, {"config.json": unknown, "model.safetensors": "", "tokenizer.json": "{}"})
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == (
        f"source.huggingface: {tmp_path / 'model'}/config.json has model_type 'flux-capacitor', which transformers does not know"
    )


def test_classification_needs_a_sequence_classification_head(tmp_path: Path) -> None:
    encoder = json.dumps({"model_type": "bert", "architectures": ["BertModel"]})
    config = _config(tmp_path, {"config.json": encoder, "model.safetensors": "", "tokenizer.json": "{}"})
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == (
        "source.huggingface: task = 'classification' needs a ...ForSequenceClassification folder; config.json's "
        "architectures are ['BertModel']"
    )


def test_remote_code_is_refused(tmp_path: Path) -> None:
    remote = json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "modeling_mine.MyModel"}})
    config = _config(tmp_path, {"config.json": remote, "model.safetensors": "", "tokenizer.json": "{}"})
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == (
        f"source.huggingface: {tmp_path / 'model'} needs its own Python code (config.json has auto_map, "
        "trust_remote_code); slimserve runs only architectures that transformers ships"
    )


def test_plain_encoder_needs_a_pooling(tmp_path: Path) -> None:
    encoder = json.dumps({"model_type": "bert", "architectures": ["BertModel"]})
    config = _config(tmp_path, {"config.json": encoder, "model.safetensors": "", "tokenizer.json": "{}"}, task="embedding")
    with pytest.raises(ConfigError) as error:
        derive_config(config)
    assert str(error.value) == (
        f"task_options.pooling: {tmp_path / 'model'} is a plain encoder (no modules.json): choose how its token "
        "vectors become one vector per text: 'mean', 'cls' or 'max'"
    )


def test_derived_options_come_from_the_folder(tmp_path: Path) -> None:
    files = {"config.json": json.dumps({**json.loads(BERT), "max_position_embeddings": 512}), "model.safetensors": "",
             "tokenizer.json": "{}", "tokenizer_config.json": json.dumps({"model_max_length": 128, "pad_token": "[PAD]"})}
    config = derive_config(_config(tmp_path, files))
    assert config.labels == ["no", "yes"]
    assert config.task_options == {
        "tokenizer": "tokenizer.json", "tokenizer_source": f"{tmp_path / 'model'}/tokenizer.json", "max_tokens": 128,
        "pad_token": "[PAD]",
    }


# --------------------------------------------------------------------------- tiny models (slow)


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every tiny folder, made once per session (shared by xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "hfzoo"
    with FileLock(str(shared / "hfzoo.lock")):
        if not (folder / "done").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            for family in hfzoo.CLASSIFIERS:
                hfzoo.classifier(family, folder / family)
            for pooling in hfzoo.POOLINGS:
                hfzoo.sentence_transformer(folder / f"st-{pooling}", pooling, dense=pooling == "mean")
            hfzoo.encoder(folder / "encoder")
            (folder / "done").write_text("ok")
    return folder


def _clear_texts(folder: Path, count: int, seed: int) -> list[str]:
    """Held-out texts on which the original's top class leads the next by >= 0.05 in logits:
    random tiny models tie on some texts, where any rounding (int8 or not) may pick either."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    candidates = hfzoo.texts(4 * count, seed)
    with torch.no_grad():
        logits = model(**tokenizer(candidates, padding=True, return_tensors="pt")).logits
    top = logits.topk(2).values
    return [text for text, gap in zip(candidates, (top[:, 0] - top[:, 1]).tolist()) if gap >= 0.05][:count]


@pytest.mark.slow
@pytest.mark.parametrize("family", hfzoo.CLASSIFIERS)
def test_classifier_export_matches_transformers(zoo_dir: Path, family: str, tmp_path: Path) -> None:
    """The fp32 export fed by the handler's tokenizer gives transformers' logits (1e-4), and the
    handler's tokenizer gives transformers' token ids."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from slimserve.build.pipeline import huggingface_torch
    from slimserve.build.pipeline.embedding import build_tokenizer
    from slimserve.handler.tasks.embedding import TokenFeeds

    config = derive_config(load_config(_project(tmp_path / "p", zoo_dir / family, "classification")))
    model = huggingface_torch.load_model(config)
    assert ("token_type_ids" in model.input_names) == (family != "distilbert")
    path = huggingface_torch.export(model, huggingface_torch.export_config(config, model), tmp_path / "model.onnx")
    texts = hfzoo.texts(24, seed=3)
    feeds = TokenFeeds(build_tokenizer(config), {name: np.dtype(np.int64) for name in model.input_names})(texts)
    original = AutoModelForSequenceClassification.from_pretrained(str(zoo_dir / family), local_files_only=True).eval()
    theirs = AutoTokenizer.from_pretrained(str(zoo_dir / family), local_files_only=True)(texts, padding=True, return_tensors="np")
    np.testing.assert_array_equal(feeds["input_ids"], theirs["input_ids"])
    with torch.no_grad():
        expected = original(**{name: torch.from_numpy(array) for name, array in feeds.items()}).logits.numpy()
    exported = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(exported, expected, atol=1e-4)
    assert config.labels == hfzoo.LABELS


@pytest.mark.slow
@pytest.mark.parametrize("pooling", hfzoo.POOLINGS)
def test_sentence_transformers_export_matches_encode(zoo_dir: Path, pooling: str, tmp_path: Path) -> None:
    """Transformer + Pooling (each mode; Dense too for mean) + Normalize in the graph: the fp32
    export of each text equals SentenceTransformer.encode within 1e-5."""
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer

    from slimserve.build.pipeline import huggingface_torch
    from slimserve.build.pipeline.embedding import build_tokenizer
    from slimserve.handler.tasks.embedding import TokenFeeds

    folder = zoo_dir / f"st-{pooling}"
    config = derive_config(load_config(_project(tmp_path / "p", folder, "embedding")))
    assert config.task_options["max_tokens"] == 48  # sentence-transformers' max_seq_length
    model = huggingface_torch.load_model(config)
    path = huggingface_torch.export(model, huggingface_torch.export_config(config, model), tmp_path / "model.onnx")
    texts = [*hfzoo.texts(12, seed=4), "word " * 80]  # the last is cut at 48 tokens
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = TokenFeeds.for_session(build_tokenizer(config), session)
    ours = np.concatenate([session.run(None, feeds([text]))[0] for text in texts])
    expected = SentenceTransformer(str(folder), device="cpu", local_files_only=True).encode(texts, batch_size=1)
    assert ours.shape == expected.shape == (len(texts), 16 if pooling == "mean" else 32)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def _build(zoo_dir: Path, name: str, task: str, options: str, texts: list[str], tmp_path_factory) -> Path:
    from slimserve.build.pipeline.progress import Steps
    from slimserve.build.pipeline.run import run_build

    project = _project(tmp_path_factory.mktemp(name), zoo_dir / name, task, options)
    (project / "heldout.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = project / "dist"
    run_build(project, out=out, steps=Steps(), precompile_bytecode=False)
    return out


def _serve(out: Path, texts: list[str]) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}], "parameters": {}}
    with (
        running(out, LocalRunOptions(cache_dir=CACHE_DIR), console=quiet_console()) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        response = client.post(f"/v2/models/{manifest['name']}/infer", json=body)
        explain = client.post(f"/v2/models/{manifest['name']}/explain", json=body)
    assert response.status_code == 200, response.text
    return {"outputs": {output["name"]: output for output in response.json()["outputs"]}, "explain": explain, "manifest": manifest}


@pytest.mark.slow
@pytest.mark.parametrize("family", [pytest.param(name, marks=pytest.mark.xdist_group(f"hf-{name}")) for name in hfzoo.CLASSIFIERS])
def test_classifier_builds_and_serves_the_pipelines_labels(zoo_dir: Path, family: str, tmp_path_factory) -> None:
    """int8, gated on agreement with the original (no labels given), served by slimserve local:
    the labels of transformers.pipeline('text-classification') on >= 99 % of the texts, the
    scores its softmax probabilities."""
    from transformers import pipeline

    texts = _clear_texts(zoo_dir / family, HELDOUT, seed=5)
    out = _build(zoo_dir, family, "classification", "", texts, tmp_path_factory)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["passed"] and manifest["compression"]["method"] == "dynamic-int8"
    assert manifest["labels"] == hfzoo.LABELS and manifest["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    served = _serve(out, texts)
    classify = pipeline("text-classification", model=str(zoo_dir / family), tokenizer=str(zoo_dir / family), device="cpu")
    expected = classify(texts)
    labels = served["outputs"]["label"]["data"]
    agreement = np.mean([label == answer["label"] for label, answer in zip(labels, expected)])
    assert agreement >= 0.99, f"{family}: {agreement:.2%}"
    scores = np.array(served["outputs"]["score"]["data"])
    gated = manifest["validation"]["extra"]["max_abs_output_diff"]  # what the gate measured on these texts
    assert np.max(np.abs(scores - np.array([answer["score"] for answer in expected]))) <= gated + 1e-3
    assert manifest.get("explain") is None and served["explain"].status_code == 404  # not offered


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options"),
    [
        pytest.param("st-mean", "", marks=pytest.mark.xdist_group("hf-st-mean")),
        pytest.param("encoder", 'pooling = "cls"', marks=pytest.mark.xdist_group("hf-encoder")),
    ],
)
def test_embedding_builds_and_serves_the_originals_vectors(zoo_dir: Path, name: str, options: str, tmp_path_factory) -> None:
    """A sentence-transformers folder (mean + Dense + Normalize) and a plain encoder with CLS
    pooling: built with int8, served vectors within the gate's cosine of the original's."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    texts = hfzoo.texts(HELDOUT, seed=6)
    out = _build(zoo_dir, name, "embedding", options, texts, tmp_path_factory)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["passed"] and manifest["validation"]["extra"]["export_max_abs_diff"] < 1e-5
    vectors = np.array(_serve(out, texts)["outputs"]["embedding"]["data"]).reshape(len(texts), -1)
    if name == "encoder":
        model = AutoModel.from_pretrained(str(zoo_dir / name), local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(zoo_dir / name), local_files_only=True)
        with torch.no_grad():
            cls = model(**tokenizer(texts, padding=True, return_tensors="pt")).last_hidden_state[:, 0].numpy()
        expected = cls / np.linalg.norm(cls, axis=1, keepdims=True)
    else:
        expected = SentenceTransformer(str(zoo_dir / name), device="cpu", local_files_only=True).encode(texts)
    cosine = np.sum(vectors * expected, axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.95  # validation.min_cosine's default
