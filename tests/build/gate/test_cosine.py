"""The embedding task's cosine gate on the real MiniLM build (slow; one xdist worker, as the
build is made once per session): it passes the shipped model as the build did, and fails an
impossible threshold or a damaged model with an explanation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from slimserve.build.config import load_config
from slimserve.build.gate.cosine import CosineEvaluator
from slimserve.build.gate.reference import Reference
from slimserve.build.pipeline.huggingface import derive_config

from repo import EXAMPLES_DIR

MINILM = EXAMPLES_DIR / "minilm"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("minilm")]


@pytest.fixture(scope="module")
def config():
    return derive_config(load_config(MINILM))  # as the build reads it (the folder's tokenizer)


@pytest.fixture(scope="module")
def evaluator(config, minilm_build: Path):
    """The build's gate set up again, against the build's fp32 export (the build itself used the
    PyTorch model; the two agree to ~1e-7, see export_min_cosine in the manifest)."""
    fp32 = onnx.load(str(minilm_build / "work" / "fp32.onnx"), load_external_data=False)
    names = [value.name for value in fp32.graph.input]
    return CosineEvaluator(config, Reference(minilm_build / "work" / "fp32.onnx", None, names))


@pytest.fixture(scope="module")
def shipped_vectors(evaluator, minilm_build: Path) -> dict[str, np.ndarray]:
    return evaluator.candidate_vectors(minilm_build / "model.onnx")


def test_gate_passes_on_the_shipped_model(evaluator, shipped_vectors, minilm_build: Path) -> None:
    gate = evaluator.verdict(shipped_vectors)
    assert gate.passed, gate.explain()
    assert gate.samples == 232 and list(shipped_vectors) == ["single", "batch 32"]
    recorded = json.loads((minilm_build / "manifest.json").read_text())["validation"]["extra"]
    for key in ("min_cosine_single", "mean_cosine_single", "min_cosine_batch_32", "mean_cosine_batch_32"):
        assert gate.extra[key] == pytest.approx(recorded[key], abs=1e-5)  # the build's verdict, reproduced


def test_gate_fails_an_impossible_threshold(evaluator, shipped_vectors, config) -> None:
    strict = copy.copy(evaluator)
    strict.config = config.model_copy(update={"validation": config.validation.model_copy(update={"min_cosine": 0.9999})})
    gate = strict.verdict(shipped_vectors)
    assert [check.name for check in gate.failures] == ["min cosine (single)", "min cosine (batch 32)"]
    assert "(must be >= 0.9999): MISSED by" in gate.explain()
    assert gate.explain().startswith("cosine gate FAILED on 232 held-out texts: min cosine (single) = 0.9")


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
