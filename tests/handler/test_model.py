"""Loading the model at init: hash pinning, corrupted files and manifests are refused clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slimserve.handler.errors import ModelLoadError
from slimserve.handler.model import load_model, session_options


@pytest.fixture()
def model_dir(digits_build: Path, tmp_path: Path) -> Path:
    pinned = json.loads((digits_build / "manifest.json").read_text())["files"]  # background.npy
    for name in ("model.onnx", "manifest.json", *pinned):
        shutil.copyfile(digits_build / name, tmp_path / name)
    return tmp_path


def test_loads_and_pins_threads(model_dir: Path) -> None:
    model = load_model(model_dir, intra_op_threads=2)
    assert model.name == "digits"
    assert model.output_names == ("logits",)
    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1


def test_tampered_model_is_refused(model_dir: Path) -> None:
    data = bytearray((model_dir / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model_dir / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"does not match the manifest: sha256 [0-9a-f]{64} != pinned"):
        load_model(model_dir, intra_op_threads=1)


def test_corrupted_model_with_matching_hash_is_refused_by_onnxruntime(model_dir: Path) -> None:
    from slimserve.build.pipeline.bundle import sha256_file

    (model_dir / "model.onnx").write_bytes(b"this is not an onnx model")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["model"]["sha256"] = sha256_file(model_dir / "model.onnx")
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        load_model(model_dir, intra_op_threads=1)


def test_missing_model_file(model_dir: Path) -> None:
    (model_dir / "model.onnx").unlink()
    with pytest.raises(ModelLoadError, match="model file not found"):
        load_model(model_dir, intra_op_threads=1)


def test_missing_and_invalid_manifest(model_dir: Path) -> None:
    (model_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="manifest is not valid JSON"):
        load_model(model_dir, intra_op_threads=1)
    (model_dir / "manifest.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(ModelLoadError, match="manifest schema 99 is not supported"):
        load_model(model_dir, intra_op_threads=1)
    (model_dir / "manifest.json").unlink()
    with pytest.raises(ModelLoadError, match="manifest not found"):
        load_model(model_dir, intra_op_threads=1)


def test_manifest_inputs_must_match_the_model(model_dir: Path) -> None:
    from slimserve.handler.app import create_app

    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["inputs"][0]["name"] = "image"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    model = load_model(model_dir, intra_op_threads=1)
    with pytest.raises(ModelLoadError, match=r"manifest inputs \['image'\] do not match the model's inputs \['pixels'\]"):
        create_app(model)


def test_files_beside_the_model_are_pinned_too(model_dir: Path) -> None:
    from slimserve.build.pipeline.bundle import sha256_file

    (model_dir / "tokenizer.json").write_text('{"version": "1.0"}')
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["files"] = {"tokenizer.json": sha256_file(model_dir / "tokenizer.json")}
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    assert load_model(model_dir, intra_op_threads=1).model_dir == model_dir
    (model_dir / "tokenizer.json").write_text('{"version": "2.0"}')
    with pytest.raises(ModelLoadError, match=r"tokenizer.json does not match the sha256 the manifest pins"):
        load_model(model_dir, intra_op_threads=1)
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="tokenizer.json is missing from"):
        load_model(model_dir, intra_op_threads=1)
