"""The portability claim, run: a model served with the options the build records gives the same
bits on an AVX2-only CPU as on this one, and without them it does not.

onnxruntime runs natively and under ``qemu-x86_64 -cpu Haswell`` (Debian's qemu-user: AVX2 and
FMA, no AVX-512, no VNNI, so onnxruntime takes its AVX2 u8 x s8 kernels, which add pairs of
products in saturating 16 bits). Every emulated run opens its sessions with the handler's own
``session_options``. The assertions hold on any x86-64 host: "served == native" because both
compute exact integers (VNNI, or u8 x u8 after the conversion), and "unconverted != served"
compares two runs under the same emulated CPU. scripts/bootstrap installs qemu-user.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.compression.methods import compress
from slimserve.build.config import CompressionConfig
from slimserve.build.gate.portability import (
    DEFAULT_SERVING,
    PRECISE_INT8_SERVING,
    integer_portability,
    serving_options,
)

from toymodels import tiny_encoder

pytestmark = pytest.mark.slow

# Runs each job of a JSON list ({model, serving, feeds}) and saves the first outputs.
RUNNER = """
import json, sys
import numpy as np
import onnxruntime as ort
from slimserve.handler.model import session_options
outputs = {}
for index, job in enumerate(json.load(open(sys.argv[1]))):
    session = ort.InferenceSession(job["model"], session_options(1, job["serving"]), providers=["CPUExecutionProvider"])
    outputs[str(index)] = session.run(None, dict(np.load(job["feeds"])))[0]
np.savez(sys.argv[2], **outputs)
"""


@pytest.fixture(scope="module")
def qemu() -> str:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("emulates an AVX2-only x86-64 CPU with qemu-user: x86-64 Linux only")
    path = shutil.which("qemu-x86_64")
    if path is None:
        pytest.fail("qemu-x86_64 not found: run scripts/bootstrap (it installs Debian's qemu-user)")
    return path


def _run(jobs: list[dict], folder: Path, name: str, emulator: list[str]) -> list[np.ndarray]:
    spec, result = folder / f"{name}.json", folder / f"{name}.npz"
    spec.write_text(json.dumps(jobs))
    completed = subprocess.run(
        [*emulator, sys.executable, "-c", RUNNER, str(spec), str(result)], capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    saved = np.load(result)
    return [saved[str(index)] for index in range(len(jobs))]


def _jobs(cases: list[tuple[Path, Path]], folder: Path) -> list[dict]:
    """Each (model, feeds) as served (its serving_options) and at the handler's defaults."""
    jobs = []
    for model, feeds in cases:
        jobs += [
            {"model": str(model), "serving": serving_options(model), "feeds": str(feeds)},
            {"model": str(model), "serving": DEFAULT_SERVING, "feeds": str(feeds)},
        ]
    return jobs


def _feeds(folder: Path, name: str, **arrays: np.ndarray) -> Path:
    path = folder / f"{name}.npz"
    np.savez(path, **arrays)
    return path


def test_served_options_give_avx2_hosts_the_same_bits(tmp_path: Path, qemu: str, digits_build: Path, minilm_build: Path) -> None:
    from tokenizers import Tokenizer

    encoder = tiny_encoder(tmp_path / "encoder.onnx", layers=2)
    compress(encoder, tmp_path / "per_token.onnx", CompressionConfig(method="per-token-int8"))
    compress(digits_build / "work" / "fp32.onnx", tmp_path / "digits.onnx", CompressionConfig(method="dynamic-int8"))  # full-range s8
    ids = np.random.default_rng(0).integers(0, 1100, (6, 16))
    pixels = np.random.default_rng(0).uniform(0, 16, (32, 64)).astype(np.float32)
    tokenizer = Tokenizer.from_file(str(minilm_build / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(["OK", "Wait, what?!", "The quick brown fox jumps over the lazy dog.", "1 + 1 = 2"])
    text = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    cases = [
        (tmp_path / "per_token.onnx", _feeds(tmp_path, "ids", input_ids=ids)),
        (tmp_path / "digits.onnx", _feeds(tmp_path, "pixels", pixels=pixels)),
        (minilm_build / "model.onnx", _feeds(tmp_path, "text", **text)),
    ]
    for model, _ in cases:  # all three ship full-range s8 weights: the build serves them converted
        assert serving_options(model) == PRECISE_INT8_SERVING
        assert integer_portability(model, "x86_64").saturation_free
        assert not integer_portability(model, "x86_64", DEFAULT_SERVING).saturation_free
    jobs = _jobs(cases, tmp_path)
    native = _run(jobs, tmp_path, "native", [])
    haswell = _run(jobs, tmp_path, "haswell", [qemu, "-cpu", "Haswell"])
    for index, (model, _) in enumerate(cases):
        served, unconverted = 2 * index, 2 * index + 1
        # As served: the same bits with and without VNNI.
        np.testing.assert_array_equal(haswell[served], native[served], err_msg=f"{model.name} as served")
        # At the default options the AVX2 kernels saturate: the option is what makes it exact.
        assert not np.array_equal(haswell[unconverted], haswell[served]), model.name
