"""``slimserve build`` on models and projects nobody wrote for slimserve: every failure is one
typed line and a non-zero exit code, never a trace (``--debug`` shows it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import slimserve.build.compression.stage as stage
from slimserve.build.cli import app

from toymodels import linear_classifier

DATA_PY = '''import numpy as np

def heldout():
    x = np.random.default_rng(0).normal(size=(20, {features})).astype(np.float32)
    {body}
    return {{"x": x}}, np.zeros(20, dtype=np.int64)
'''
TOML = """name = "toy"
task = "classification"
[source]
onnx = "model.onnx"
[validation]
data = "data.py:heldout"
"""


def project(folder: Path, *, features: int = 8, body: str = "pass") -> Path:
    """A linear classifier over 8 features (weights large enough for int8 to apply)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    linear_classifier(folder, ("logits",), weights=weights, model_path=folder / "model.onnx")
    (folder / "data.py").write_text(DATA_PY.format(features=features, body=body))
    (folder / "slimserve.toml").write_text(TOML)
    return folder


def build(folder: Path, *extra: str):
    return CliRunner().invoke(app, ["build", str(folder), "--out", str(folder / "out"), "--no-precompile", *extra])


def _one_line_failure(result, code: int, line: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == line


def test_user_code_that_raises_is_named(tmp_path: Path) -> None:
    folder = project(tmp_path, body='raise ValueError("boom in user code")')
    _one_line_failure(build(folder), 2, "error: validation.data data.py:heldout raised ValueError: boom in user code")


def test_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "model.onnx").write_bytes(b"PK\x03\x04 a zip, not a model")
    result = build(folder)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: source.onnx model.onnx: model.onnx is not an ONNX model (")


def test_held_out_rows_the_model_cannot_take_fail_before_bundling(tmp_path: Path) -> None:
    folder = project(tmp_path, features=5)  # the model takes 8
    result = build(folder)
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the handler cannot answer held-out rows 0..19: model execution failed: InvalidArgument (")
    assert "Got invalid dimensions for input: x" in line
    assert not (folder / "out" / "lambda.zip").exists()


def test_a_quantizer_failure_is_a_compression_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise ValueError("Failed to find proper ai.onnx domain")

    monkeypatch.setattr(stage, "compress", broken)
    _one_line_failure(
        build(project(tmp_path)), 1, "error: dynamic-int8 failed on this model: ValueError: Failed to find proper ai.onnx domain"
    )


def test_debug_shows_the_trace(tmp_path: Path) -> None:
    folder = project(tmp_path, body='raise ValueError("boom in user code")')
    result = CliRunner().invoke(app, ["--debug", "build", str(folder), "--out", str(folder / "out")])
    assert result.exit_code == 2 and "Traceback" in result.output and "boom in user code" in result.output
