"""The PyTorch baselines the suite compares slimserve with. A model with a PyTorch original gets
them whether the original is ``source.module`` + weights or a ``source.huggingface`` folder
(loaded as the build loads it); only ``source.onnx`` goes without. Tiny random-weight folders
from tests/hfzoo.py."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import hfzoo
import pytest

from slimserve.build.bench.cold import _pytorch_contender, _Setting
from slimserve.build.bench.common import Example, http_api_event, infer_body
from slimserve.build.bench.spawn import Contender, run_once
from slimserve.build.bench.speed import measure_speed
from slimserve.handler.manifest import MANIFEST_SCHEMA, Manifest

from repo import REPO_ROOT

BASELINES = REPO_ROOT / "build" / "bench" / "baselines"


def _build_folder(dist: Path, task: str = "embedding") -> Path:
    """A build output folder with its manifest (the model files are added by the tests that
    open them)."""
    (dist / "work").mkdir(parents=True)
    text = task == "embedding"
    manifest = Manifest(
        schema=MANIFEST_SCHEMA,
        name=dist.name,
        task=task,
        model={"file": "model.onnx", "sha256": "0" * 64, "bytes": 0},
        inputs=[{"name": "text", "datatype": "BYTES", "shape": [-1]} if text else {"name": "x", "datatype": "FP32", "shape": [-1, 64]}],
        outputs=[{"name": "embedding" if text else "probabilities", "datatype": "FP32", "shape": [-1, 32 if text else 10]}],
        task_options={"tokenizer": "tokenizer.json"} if text else {},
        labels=None if text else [str(digit) for digit in range(10)],
    )
    (dist / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    return dist


def _example(root: Path, source: str, *, task_options: str = "") -> Example:
    """A text-embedding project whose slimserve.toml names ``source``, and its build folder."""
    folder = root / "project"
    folder.mkdir(parents=True)
    (folder / "slimserve.toml").write_text(
        'name = "tiny"\ntask = "embedding"\n'
        + (f"[task_options]\n{task_options}\n" if task_options else "")
        + f"[source]\n{source}\n"
        + '[validation]\ndata = "data.py:heldout"\nmetric = "cosine"\n',
        encoding="utf-8",
    )
    return Example(folder=folder, dist=_build_folder(folder / "dist" / "tiny"))


def _setting(example: Example, tmp: Path) -> _Setting:
    event = tmp / "event.json"
    event.write_text(json.dumps(http_api_event("POST", example.infer_path, infer_body(example))), encoding="utf-8")
    return _Setting(example, sys.executable, tmp, tmp, {"BENCH_EVENT": str(event), "BENCH_MODEL_NAME": example.name}, 1)


@pytest.fixture(scope="module")
def sentence_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hfzoo.sentence_transformer(tmp_path_factory.mktemp("hf") / "st-mean", "mean")


def test_a_hugging_face_folder_gets_the_pytorch_handler_that_loads_it_as_the_build_does(sentence_folder: Path, tmp_path: Path) -> None:
    example = _example(tmp_path, f'huggingface = "{sentence_folder}"')
    contender = _pytorch_contender(_setting(example, tmp_path))
    assert isinstance(contender, Contender) and contender.name == "pytorch_fastapi"
    assert contender.env["BENCH_HANDLER_FILE"] == str(BASELINES / "torch_huggingface_handler.py")
    assert contender.env["BENCH_EXAMPLE"] == str(example.folder)
    assert contender.env["BENCH_TOKENIZER"] == str(sentence_folder / "tokenizer.json")
    assert (contender.env["BENCH_MAX_TOKENS"], contender.env["BENCH_PAD_TOKEN"]) == ("48", "[PAD]")
    # The venv's site runs (an editable slimserve is importable only through its .pth file).
    assert contender.command[:2] == [sys.executable, "-c"]
    assert "huggingface_torch.load_model" in contender.description


def test_a_module_source_keeps_its_handler_and_only_an_onnx_source_goes_without(tmp_path: Path) -> None:
    digits = REPO_ROOT / "examples" / "digits"
    module = Example(folder=digits, dist=_build_folder(tmp_path / "dist" / "digits", task="classification"))
    contender = _pytorch_contender(_setting(module, tmp_path))
    assert isinstance(contender, Contender)
    assert contender.env["BENCH_HANDLER_FILE"] == str(BASELINES / "torch_tensor_handler.py")
    assert contender.env["BENCH_MODEL_PY"] == str(digits / "model.py") and contender.command[1] == "-S"
    onnx = _example(tmp_path / "onnx", f'onnx = "{tmp_path / "model.onnx"}"')
    assert _pytorch_contender(_setting(onnx, tmp_path)) == "no PyTorch source (source.onnx): the PyTorch baseline is not measured"


def test_pytorch_eager_is_timed_for_a_hugging_face_folder(tmp_path: Path) -> None:
    # text_feed draws token ids up to 29000 (all-MiniLM-L6-v2's vocabulary): a wide enough table.
    folder = hfzoo.encoder(tmp_path / "encoder", vocab_size=30522)
    example = _example(tmp_path, f'huggingface = "{folder}"', task_options='pooling = "mean"')
    from slimserve.build.pipeline import huggingface_torch

    model, names = example.torch_original()
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    huggingface_torch.export(model, huggingface_torch.export_config(example.config, model), example.fp32_path)
    shutil.copyfile(example.fp32_path, example.model_path)
    speed = measure_speed(example, threads=(1,), min_runs=2, max_runs=3, budget_s=0.01, warmup=1)
    assert speed["note"] is None and speed["torch_version"]
    for cell in speed["cells"]:
        assert set(cell["engines"]) == {"pytorch_eager_fp32", "onnxruntime_fp32", "slimserve"}
        assert cell["speedup_vs_pytorch_eager_x"] > 0
        assert cell["output_agreement"]["onnxruntime_fp32_vs_pytorch"]["min_cosine"] > 0.9999


@pytest.mark.slow
def test_the_hugging_face_handler_answers_the_suites_request(sentence_folder: Path, tmp_path: Path) -> None:
    example = _example(tmp_path, f'huggingface = "{sentence_folder}"')
    contender = _pytorch_contender(_setting(example, tmp_path))
    assert isinstance(contender, Contender)
    sample = run_once(contender, timeout_s=180)
    assert sample["total_ms"] > sample["import_init_ms"] > 0
