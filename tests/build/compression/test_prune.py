"""Pruning before export, gated on the real digits held-out data: magnitude pruning (zeros,
same shapes: the zip shrinks) and structured pruning (whole neurons / heads removed: the
shapes shrink), each with one passing and one failing configuration, plus the fine-tune hook."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.compression.prune import (
    lambda_effect,
    markdown,
    prune_for_build,
    prune_model,
    structured_groups,
    zipped_bytes,
)
from slimserve.build.config import PruneConfig, load_config
from slimserve.build.errors import ConfigError, PruneError
from slimserve.build.gate.accuracy import AccuracyEvaluator
from slimserve.build.gate.reference import Reference
from slimserve.build.pipeline.export import export_onnx

from repo import REPO_ROOT

DIGITS = REPO_ROOT / "examples" / "digits"

FINETUNE = '''
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import train_split


def finetune(model, epochs=10):
    """A short fine-tune on the training split (cross-entropy), one thread, seeded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = (torch.from_numpy(a) for a in train_split())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    try:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 64):
                batch = order[start : start + 64]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
'''


@pytest.fixture(scope="module")
def digits(torch_example):
    digits = torch_example(DIGITS, "fp32")
    return digits | {"evaluator": AccuracyEvaluator(digits["config"], Reference(digits["fp32"], digits["model"], ["pixels"]))}


@pytest.fixture(scope="module")
def finetune_example(digits_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the digits example with a finetune.py and a [prune] section."""
    import shutil

    example = tmp_path_factory.mktemp("prune-example")
    for name in ("data.py", "model.py", "train.py", "weights.safetensors", "slimserve.toml"):
        shutil.copyfile(DIGITS / name, example / name)
    (example / "finetune.py").write_text(FINETUNE)
    with (example / "slimserve.toml").open("a") as toml:
        toml.write('\n[prune]\nmethod = "structured"\nsparsity = 0.5\nfinetune = "finetune.py:finetune"\n')
    return example


def _gate(digits, pruned, name: str):
    path = export_onnx(pruned, digits["config"].export, digits["folder"] / f"{name}.onnx")
    return digits["evaluator"].gate(path), path


def _shapes(path: Path) -> list[list[int]]:
    import onnx

    return [list(init.dims) for init in onnx.load(str(path)).graph.initializer if len(init.dims) == 2]


def test_magnitude_pruning_passes_and_zeros_compress(digits) -> None:
    pruned, report = prune_model(digits["model"], PruneConfig(method="magnitude", sparsity=0.5))
    gate, path = _gate(digits, pruned, "magnitude-50")
    assert gate.passed, gate.explain()
    assert report["parameters_after"] == report["parameters_before"] == 26122
    assert report["weight_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert _shapes(path) == _shapes(digits["fp32"])  # shapes unchanged
    effect = lambda_effect(digits["fp32"], path, free_dims=[1], runs=20)
    assert effect["after"]["onnx_bytes"] == pytest.approx(effect["before"]["onnx_bytes"], rel=0.01)
    assert effect["zipped_ratio"] < 0.65  # zeros compress in lambda.zip
    assert "| nonzero parameters | 26,122 |" in markdown(report, effect)
    # the original model (the gate's reference) is untouched
    assert all(float((p != 0).float().mean()) > 0.99 for p in digits["model"].parameters() if p.dim() == 2)


def test_magnitude_pruning_too_far_fails_the_gate(digits) -> None:
    pruned, _ = prune_model(digits["model"], PruneConfig(method="magnitude", sparsity=0.9))
    gate, _ = _gate(digits, pruned, "magnitude-90")
    assert not gate.passed and gate.candidate < 0.9


def test_structured_pruning_without_finetune_fails(digits) -> None:
    pruned, report = prune_model(digits["model"], PruneConfig(method="structured", sparsity=0.5))
    assert report["groups"] == [
        {"group": "0", "kind": "neurons", "units_before": 128, "units_after": 64},
        {"group": "2", "kind": "neurons", "units_before": 128, "units_after": 64},
    ]
    gate, path = _gate(digits, pruned, "structured-50")
    assert _shapes(path) == [[64, 64], [64, 64], [10, 64]]  # the layers really shrank
    assert not gate.passed and gate.candidate < 0.9


def test_structured_pruning_with_finetune_from_config_passes(digits, finetune_example: Path) -> None:
    config = load_config(finetune_example)
    messages: list[str] = []
    pruned, report = prune_for_build(config, digits["model"], log=messages.append)
    assert report["finetuned"] is True and report["parameters_after"] == 8970
    gate, path = _gate(digits, pruned, "structured-50-finetuned")
    assert gate.passed, gate.explain()
    assert path.stat().st_size < digits["fp32"].stat().st_size * 0.4
    assert zipped_bytes(path) < zipped_bytes(digits["fp32"]) * 0.4
    assert messages == ["pruned (structured, sparsity 0.5): 26,122 -> 8,970 parameters, 26,122 -> 8,970 nonzero (fine-tuned)"]


def test_prepare_source_prunes_exports_and_reports_what_it_buys(digits, finetune_example: Path) -> None:
    from slimserve.build.compression.stage import prepare_source

    config = load_config(finetune_example)
    reference = Reference(digits["fp32"], digits["model"], ["pixels"])
    folder = digits["folder"] / "stage"
    folder.mkdir()
    path, manifest_extra, sections = prepare_source(config, reference, folder)
    assert path == folder / "pruned.onnx" and _shapes(path) == [[64, 64], [64, 64], [10, 64]]
    prune = manifest_extra["prune"]
    assert prune["method"] == "structured" and prune["finetuned"] is True
    assert prune["lambda"]["zipped_ratio"] < 0.4 and prune["lambda"]["after"]["onnx_bytes"] < prune["lambda"]["before"]["onnx_bytes"]
    assert sections[0].startswith("## Pruning (structured, sparsity 0.5, fine-tuned)")
    assert digits["evaluator"].gate(path).passed


def test_magnitude_masks_hold_during_finetune(digits) -> None:
    def finetune(model):
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(8, 64)).sum().backward()
            optimizer.step()

    _, report = prune_model(digits["model"], PruneConfig(method="magnitude", sparsity=0.8), finetune=finetune)
    assert report["weight_sparsity"] == pytest.approx(0.8, abs=0.02)


def _tiny_bert():
    import torch
    from torch import nn

    class SelfAttention(nn.Module):
        def __init__(self, hidden=16, heads=4):
            super().__init__()
            self.heads, self.head_size = heads, hidden // heads
            self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

        def forward(self, x):
            b, s, _ = x.shape
            split = lambda t: t.view(b, s, -1, self.head_size).transpose(1, 2)
            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            attention = torch.softmax(q @ k.transpose(-1, -2) / self.head_size**0.5, dim=-1)
            return (attention @ v).transpose(1, 2).reshape(b, s, -1)

    class Output(nn.Module):
        def __init__(self, inner, hidden=16):
            super().__init__()
            self.dense = nn.Linear(inner, hidden)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.self, self.output = SelfAttention(), Output(16)

        def forward(self, x):
            return x + self.output.dense(self.self(x))

    class Intermediate(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(16, 32)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention, self.intermediate, self.output = Attention(), Intermediate(), Output(32)

        def forward(self, x):
            x = self.attention(x)
            return x + self.output.dense(torch.nn.functional.gelu(self.intermediate.dense(x)))

    torch.manual_seed(0)
    return nn.Sequential(Layer(), Layer())


def test_structured_pruning_removes_attention_heads_and_ffn_neurons() -> None:
    import torch

    model = _tiny_bert().eval()
    groups = structured_groups(model)
    assert [(g.name, g.kind, g.units, g.unit) for g in groups] == [
        ("0 feed-forward", "ffn-neurons", 32, 1), ("0.attention.self heads", "heads", 4, 4),
        ("1 feed-forward", "ffn-neurons", 32, 1), ("1.attention.self heads", "heads", 4, 4),
    ]
    # A head whose output projection is zero contributes nothing: pruning it is exact.
    with torch.no_grad():
        for layer in model:
            layer.attention.output.dense.weight[:, 4:8] = 0
            layer.intermediate.dense.weight[:8] *= 1e-6  # FFN neurons that never fire
            layer.intermediate.dense.bias[:8] = -20.0
    x = torch.randn(2, 5, 16)
    expected = model(x)
    pruned, report = prune_model(model, PruneConfig(method="structured", sparsity=0.25))
    assert [g["units_after"] for g in report["groups"]] == [24, 3, 24, 3]
    assert pruned[0].attention.self.heads == 3 and pruned[0].attention.self.query.out_features == 12
    assert pruned[0].attention.output.dense.in_features == 12
    assert torch.allclose(pruned(x), expected, atol=1e-4)


def test_structured_pruning_refuses_what_it_cannot_shrink() -> None:
    from torch import nn

    with pytest.raises(PruneError, match=r"^prune: structured pruning found nothing to shrink: it handles Linear"):
        prune_model(nn.Sequential(nn.Linear(4, 2)), PruneConfig(method="structured", sparsity=0.5))
    with pytest.raises(PruneError, match=r"^prune: no Linear or Conv layer to prune \(all excluded\?\)$"):
        prune_model(nn.Sequential(nn.Linear(4, 2)), PruneConfig(method="magnitude", sparsity=0.5, exclude=["0"]))


def test_structured_pruning_shrinks_conv_channels_with_batchnorm() -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    pruned, report = prune_model(model, PruneConfig(method="structured", sparsity=0.5))
    assert report["groups"] == [{"group": "0", "kind": "channels", "units_before": 8, "units_after": 4}]
    assert pruned[0].out_channels == 4 and pruned[1].num_features == 4 and pruned[3].in_channels == 4
    assert pruned(torch.randn(1, 3, 8, 8)).shape == (1, 4, 4, 4)


@pytest.mark.parametrize(
    "section,message",
    [
        ('[prune]\nmethod = "magnitude"\nsparsity = 1.0\n', "  prune.sparsity: Input should be less than 1"),
        ('[prune]\nmethod = "random"\nsparsity = 0.5\n', "  prune.method: Input should be 'magnitude' or 'structured'"),
        ("[prune]\nsparsity = 0.5\n", "  prune.method: Field required"),
        ('[prune]\nmethod = "magnitude"\nsparsity = 0.5\n[distill]\nstudent = "s.py:f"\ndata = "d.py:train"\n',
         "  prune: choose [prune] or [distill], not both (prune the student in its own build)"),
    ],
)
def test_prune_config_errors(tmp_path: Path, section: str, message: str) -> None:
    (tmp_path / "slimserve.toml").write_text((DIGITS / "slimserve.toml").read_text() + "\n" + section)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert message in str(caught.value).splitlines(), str(caught.value)


def test_prune_needs_a_pytorch_source(tmp_path: Path) -> None:
    toml = (DIGITS / "slimserve.toml").read_text()
    start, end = toml.index("[source]"), toml.index("[export]")
    toml = toml[:start] + '[source]\nonnx = "m.onnx"\n\n' + toml[end:] + '\n[prune]\nmethod = "magnitude"\nsparsity = 0.5\n'
    (tmp_path / "slimserve.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert "  prune: pruning needs a PyTorch source (source.module); an ONNX source cannot be pruned" in str(caught.value).splitlines()
