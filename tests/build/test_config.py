"""slimserve.toml is validated at the boundary with exact, actionable messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError
from slimserve.infra.options import StackOptions

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
    assert config.runtime.limits.max_body_bytes == 4 * 1024 * 1024  # base64 of it fits Lambda's 6 MB


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"slimserve.toml not found: a project folder needs a slimserve.toml"):
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
        (('datatype = "FP32", shape = [-1, 4]', 'datatype = "FLOAT", shape = [-1, 4]'), "  export.inputs.0.datatype: Input should be"),
        (("data = ", "tolerance = 2.0\ndata = "), "  validation.tolerance: Input should be less than or equal to 1"),
        (("data = ", "cosine_quantile = 0.0\ndata = "), "  validation.cosine_quantile: Input should be greater than 0"),
        (("data = ", "agreement_lower_bound = 1.5\ndata = "), "  validation.agreement_lower_bound: Input should be less than or equal to 1"),
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


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value)


@pytest.mark.parametrize(
    "change,line",
    [
        (('name = "toy"', 'nmae = "toy"\nname = "toy"'), "  nmae: unknown key (did you mean 'name'?)"),
        (("[validation]", "[compression]\nper_chanel = true\n[validation]"), "  compression.per_chanel: unknown key (did you mean 'per_channel'?)"),
        (("[validation]", "[compression.auto]\ntime_budget = 60\n[validation]"), "  compression.auto.time_budget: unknown key (did you mean 'time_budget_s'?)"),
        (("[validation]", '[compression]\nmethod = "auto"\n[compression.auto]\ncandidates = [{ method = "fp16", nmae = "x" }]\n[validation]'), "  compression.auto.candidates.0.nmae: unknown key (did you mean 'name'?)"),
        (("shape = [-1, 4]", "shpe = [-1, 4], shape = [-1, 4]"), "  export.inputs.0.shpe: unknown key (did you mean 'shape'?)"),
        (("[validation]", "[runtime.limits]\nmax_batches = 8\n[validation]"), "  runtime.limits.max_batches: unknown key (did you mean 'max_batch'?)"),
        (("data = ", "tolerence = 0.1\ndata = "), "  validation.tolerence: unknown key (did you mean 'tolerance'?)"),
        (("[validation]", '[deploy]\napii = "rest"\n[validation]'), "  deploy.apii: unknown key (did you mean 'api'?)"),
        (
            ("[validation]", "[compression]\nbogus = 1\n[validation]"),
            "  compression.bogus: unknown key (expected one of: accuracy_level, activation_type, auto, bits, "
            "block_size, calibrate_method, calibration_samples, fusion_hidden_size, fusion_num_heads, method, "
            "nodes_to_exclude, op_types_to_exclude, op_types_to_quantize, optimize, per_channel, percentile, "
            "reduce_range, sensitivity, sensitivity_budget_s, transformer_fusion, weight_type)",
        ),
        (("name = \"toy\"", 'name = "toy"\nroot = "/"'), "  root: unknown key (expected one of: compression, deploy, distill, explain, export, labels, name, prune, runtime, signing, source, task, task_options, validation, version)"),
    ],
)
def test_unknown_keys_suggest_the_closest_valid_key(tmp_path: Path, change: tuple[str, str], line: str) -> None:
    message = _error(tmp_path, MINIMAL_CONFIG.replace(*change, 1))
    assert message == f"{tmp_path / 'slimserve.toml'} is invalid:\n{line}"


def test_unknown_keys_and_other_errors_are_reported_together(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL_CONFIG.replace("data = ", "tolerance = 2.0\ntolerence = 0.1\ndata = "))
    assert message.splitlines()[1:] == [
        "  validation.tolerence: unknown key (did you mean 'tolerance'?)",
        "  validation.tolerance: Input should be less than or equal to 1",
    ]


def test_the_deploy_table_is_the_stack_options(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL_CONFIG + '[deploy]\napi = "rest"\nauth = "api_key"\napi_keys = ["ci", "web"]\n'))
    assert config.deploy == StackOptions(api="rest", auth="api_key", api_keys=("ci", "web"))
    # Which keys the file sets, so that --option and flags override only those.
    assert config.deploy.model_fields_set == {"api", "auth", "api_keys"}
    assert load_config(write(tmp_path, MINIMAL_CONFIG)).deploy == StackOptions()


@pytest.mark.parametrize(
    "deploy,line",
    [
        ('auth = "api_key"', "  deploy: auth=api_key needs api=rest: HTTP APIs have no API keys or usage plans (use auth=iam or auth=jwt with api=http)"),
        ('memory_mb = "lots"', "  deploy.memory_mb: Input should be a valid integer, unable to parse string as an integer"),
        ('api = "graphql"', "  deploy.api: Input should be 'http' or 'rest'"),
    ],
)
def test_the_deploy_table_is_validated(tmp_path: Path, deploy: str, line: str) -> None:
    message = _error(tmp_path, MINIMAL_CONFIG + f"[deploy]\n{deploy}\n")
    assert message == f"{tmp_path / 'slimserve.toml'} is invalid:\n{line}"


ISSUE_CONFIG = """
name = "wine"
task = "classification"
[source]
onnx = "model.onnx"
[validation]
data = "data.py:heldout"      # returns ({input name: array}, labels)
metric = "accuracy"
tolerance = 0.01
"""


def test_an_existing_onnx_classifier_needs_no_export_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_CONFIG))
    assert config.task == "classification" and config.labels is None
    assert config.export.inputs is None and config.export.outputs is None
    assert config.options.top_k == 1 and config.options.scores is None


@pytest.mark.parametrize(
    "change,line",
    [
        (("[validation]", "[task_options]\ntopk = 3\n[validation]"), "  task_options.topk: unknown key (did you mean 'top_k'?)"),
        (("[validation]", '[task_options]\nsoftmax = false\n[validation]'), "  task_options.softmax: unknown key (expected one of: max_tokens, output, scores, top_k)"),
        (("[validation]", "[task_options]\ntop_k = 0\n[validation]"), "  task_options.top_k: Input should be greater than or equal to 1"),
        (("[validation]", '[task_options]\nscores = "odds"\n[validation]'), "  task_options.scores: Input should be 'logits' or 'probabilities'"),
        (("tolerance = 0.01", 'tolerance = 0.01\noutput = "probabilities"'), "  validation.output: applies to task = 'raw' only; task = 'classification' scores the output it serves (task_options.output)"),
        (('task = "classification"', 'task = "raw"\n[task_options]\ntop_k = 2'), "  task_options.top_k: unknown key (this table takes no keys)"),
        (('onnx = "model.onnx"', 'module = "m.py"\nweights = "w.safetensors"'), "  export: a PyTorch source (source.module) needs export.inputs and export.outputs: the exporter traces the model with them"),
    ],
)
def test_task_options_and_the_scored_output_are_validated(tmp_path: Path, change: tuple[str, str], line: str) -> None:
    message = _error(tmp_path, ISSUE_CONFIG.replace(*change, 1))
    assert message == f"{tmp_path / 'slimserve.toml'} is invalid:\n{line}"
