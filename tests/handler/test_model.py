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


def test_session_options_follow_the_manifest(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runtime.onnxruntime: the level and config entries; ``config_without_vnni`` only where the
    CPU's u8 x s8 kernels can saturate (forced both ways: the test must not depend on the CPU)."""
    import slimserve.handler.model as handler_model

    assert str(session_options(1).graph_optimization_level).endswith("ORT_ENABLE_BASIC")  # older manifests
    serving = {"graph_optimization_level": "extended", "config": {"session.a": "x"}, "config_without_vnni": {"session.b": "y"}}
    for saturates in (True, False):
        monkeypatch.setattr(handler_model, "int8_kernels_can_saturate", lambda saturates=saturates: saturates)
        options = session_options(1, serving)
        assert str(options.graph_optimization_level).endswith("ORT_ENABLE_EXTENDED")
        assert options.get_session_config_entry("session.a") == "x"
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        if saturates:
            assert options.get_session_config_entry("session.b") == "y"
        else:
            with pytest.raises(RuntimeError):
                options.get_session_config_entry("session.b")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["runtime"]["onnxruntime"] = {"graph_optimization_level": "all", "config": {}, "config_without_vnni": {}}
    manifest.pop("validated_sha256")  # edited: validated by the schema again
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_model(model_dir, intra_op_threads=1)
    assert str(loaded.session.get_session_options().graph_optimization_level).endswith("ORT_ENABLE_ALL")
    manifest["runtime"]["onnxruntime"]["graph_optimization_level"] = "most"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="graph_optimization_level"):
        load_model(model_dir, intra_op_threads=1)


def test_int8_kernels_can_saturate_reads_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's CPUID table decides (an emulated Haswell reports no AVX512VNNI there)."""
    import os

    from numpy._core._multiarray_umath import __cpu_features__ as features

    from slimserve.handler.model import int8_kernels_can_saturate

    for vnni in (True, False):
        monkeypatch.setitem(features, "AVX512VNNI", vnni)
        assert int8_kernels_can_saturate() is (os.uname().machine == "x86_64" and not vnni)


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
