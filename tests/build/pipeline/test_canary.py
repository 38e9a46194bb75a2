"""The canary requests a build records (build/pipeline/canary.py) for the deploy-time hook."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.pipeline.canary import CANARY_SAMPLES, MAX_REQUEST_BYTES, record_canary
from slimserve.handler.app import create_app
from slimserve.handler.manifest import load_manifest
from slimserve.handler.model import load_model

from repo import REPO_ROOT


def test_digits_records_confident_samples_of_distinct_classes(digits_build: Path) -> None:
    manifest = load_manifest(digits_build / "manifest.json")
    canary = manifest.canary
    assert canary is not None
    # The gate's metric and tolerance: accuracy, at most 1 point lost -> 99 % top-1 agreement.
    assert canary.check.model_dump() == {"output": "logits", "metric": "top1", "threshold": 0.99}
    assert len(canary.samples) == CANARY_SAMPLES
    winners = [int(np.argmax(sample.expected)) for sample in canary.samples]
    assert len(set(winners)) == CANARY_SAMPLES  # a model stuck on one class cannot pass
    for sample in canary.samples:
        request = sample.request
        assert len(json.dumps(request)) <= MAX_REQUEST_BYTES
        (tensor,) = request["inputs"]
        assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("pixels", "FP32", [1, 64])
        assert request["outputs"] == [{"name": "logits", "parameters": {"binary_data": False}}]
        ordered = sorted(sample.expected)
        assert ordered[-1] - ordered[-2] > 1.0  # a wide top-1 margin: CPU rounding cannot flip it
    # What ships in lambda.zip is the manifest with the canary.
    with zipfile.ZipFile(digits_build / "lambda.zip") as bundle:
        shipped = json.loads(bundle.read("model/manifest.json"))
    assert shipped["canary"] == json.loads(canary.model_dump_json())


def test_the_recorded_answers_are_the_handlers_answers(digits_build: Path) -> None:
    manifest = load_manifest(digits_build / "manifest.json")
    service = create_app(load_model(digits_build, intra_op_threads=1)).service
    for sample in manifest.canary.samples:
        reply = service.infer(manifest.name, None, json.dumps(sample.request).encode(), None)
        (output,) = json.loads(reply.body)["outputs"]
        np.testing.assert_allclose(output["data"], sample.expected, rtol=1e-6)


def test_inputs_too_large_for_the_manifest_record_no_canary(
    digits_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slimserve.build.config import load_config
    from slimserve.build.pipeline import canary as canary_module

    pinned = load_manifest(digits_build / "manifest.json").files
    for name in ("manifest.json", "model.onnx", *pinned):
        (tmp_path / name).write_bytes((digits_build / name).read_bytes())
    manifest = load_manifest(tmp_path / "manifest.json").model_copy(update={"canary": None})
    (tmp_path / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    monkeypatch.setattr(canary_module, "MAX_REQUEST_BYTES", 100)

    config = load_config(REPO_ROOT / "examples" / "digits")
    assert record_canary(config, tmp_path, manifest) is manifest
    assert load_manifest(tmp_path / "manifest.json").canary is None


@pytest.mark.slow
@pytest.mark.xdist_group("minilm")  # the MiniLM build is made once per session, on one worker
def test_minilm_records_texts_and_vectors_checked_by_cosine(minilm_build: Path) -> None:
    from slimserve.infra import canary_hook

    manifest = load_manifest(minilm_build / "manifest.json")
    canary = manifest.canary
    assert canary is not None
    assert canary.check.metric == "cosine"
    assert canary.check.threshold == 0.99  # examples/minilm: validation.min_cosine
    assert len(canary.samples) == CANARY_SAMPLES
    service = create_app(load_model(minilm_build, intra_op_threads=1)).service
    dimensions = manifest.outputs[0].shape[-1]
    answers = []
    for sample in canary.samples:
        (tensor,) = sample.request["inputs"]
        assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("text", "BYTES", [1])
        assert len(sample.expected) == dimensions
        reply = service.infer(manifest.name, None, json.dumps(sample.request).encode(), None)
        (output,) = json.loads(reply.body)["outputs"]
        answers.append((sample.expected, output["data"]))
    assert canary_hook.compare(canary.check.model_dump(), answers) == []
