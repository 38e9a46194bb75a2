"""slimserve.toml is validated at the boundary with exact, actionable messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError

from repo import REPO_ROOT
from toymodels import MINIMAL_CONFIG


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "slimserve.toml").write_text(text)
    return tmp_path


def test_digits_example_config_loads() -> None:
    config = load_config(REPO_ROOT / "examples" / "digits")
    assert config.name == "digits"
    assert config.compression.method == "dynamic-int8" and config.compression.per_channel
    assert config.validation.tolerance == 0.01
    assert config.runtime.python == "3.12" and config.runtime.architecture == "x86_64"
    assert config.path("model.py") == REPO_ROOT / "examples" / "digits" / "model.py"


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL_CONFIG))
    assert config.task == "raw"
    assert config.compression.method == "dynamic-int8"
    assert config.runtime.limits.max_body_bytes == 5 * 1024 * 1024


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"slimserve.toml not found: an example folder needs a slimserve.toml"):
        load_config(tmp_path)


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(tmp_path, "name = "))


@pytest.mark.parametrize(
    "change,message",
    [
        (('name = "toy"', 'name = "Not Valid!"'), "  name: String should match pattern"),
        (('onnx = "model.onnx"', 'module = "m.py"'), "  source: source.module needs source.weights"),
        (('onnx = "model.onnx"', 'onnx = "a.onnx"\nmodule = "m.py"\nweights = "w.safetensors"'), "  source: set only one of source.onnx and source.module"),
        (("[validation]", '[runtime]\npython = "3.9"\n[validation]'), "  runtime.python: runtime.python must be one of ['3.11', '3.12', '3.13'] (Lambda runtimes)"),
        (("[validation]", "[runtime]\ntimeout_s = 29\n[validation]"), "  runtime.timeout_s: Input should be less than or equal to 28"),
        (("[validation]", '[compression]\nmethod = "int3"\n[validation]'), "  compression.method: Input should be 'none', 'dynamic-int8', 'static-int8' or 'fp16'"),
        (("[validation]", "[compression]\nbogus = 1\n[validation]"), "  compression.bogus: Extra inputs are not permitted"),
        (('datatype = "FP32", shape = [-1, 4]', 'datatype = "FLOAT", shape = [-1, 4]'), "  export.inputs.0.datatype: Input should be"),
        (("data = ", "tolerance = 2.0\ndata = "), "  validation.tolerance: Input should be less than or equal to 1"),
        (("[validation]", "[explain]\nsamples = 9000\n[validation]"), "  explain.samples: 9000 is more than max_samples (8192)"),
        (("[validation]", "[explain]\npatch = [2, 2]\n[validation]"), "  explain.patch: image inputs need both image_shape and patch"),
        (("[validation]", '[explain]\nmethods = ["lime"]\n[validation]'), "  explain.methods.0: Input should be 'kernel-shap', 'shapley-sampling' or 'leave-one-out'"),
        (("[validation]", "[explain]\nenabled = false\n[validation]\nmin_explanation_agreement = 0.9"),
         "  validation.min_explanation_agreement: needs explanations (explain.enabled = true)"),
    ],
)
def test_exact_messages(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MINIMAL_CONFIG.replace(*change, 1)))
    assert str(caught.value).startswith(f"{tmp_path / 'slimserve.toml'} is invalid:\n")
    assert message in str(caught.value)


def test_overrides_replace_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL_CONFIG), {"validation.tolerance": 0.0, "compression.method": "fp16"})
    assert config.validation.tolerance == 0.0
    assert config.compression.method == "fp16"
