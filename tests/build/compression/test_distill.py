"""Knowledge distillation on the real digits data: the examples/digits-distilled student (10x
fewer parameters than the teacher) trained on the teacher's soft targets passes the gate
against the teacher; an under-trained student fails it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from slimserve.build.compression.distill import distill, parameter_count, train_student
from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError
from slimserve.build.gate.accuracy import AccuracyEvaluator
from slimserve.build.gate.reference import Reference
from slimserve.build.pipeline.export import export_onnx

from repo import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "digits-distilled"


@pytest.fixture(scope="module")
def teacher(torch_example):
    return torch_example(EXAMPLE, "teacher")


def test_distilled_student_is_10x_smaller_and_passes_the_gate(teacher) -> None:
    """The digits-distilled example through the pipeline's entry points."""
    from slimserve.build.compression.stage import compress_and_gate, prepare_source
    from slimserve.build.pipeline.progress import Steps

    config, folder = teacher["config"], teacher["folder"]
    reference = Reference(teacher["fp32"], teacher["model"], ["pixels"])
    messages: list[str] = []
    student_fp32, manifest_extra, sections = prepare_source(config, reference, folder, log=messages.append)
    report = manifest_extra["distill"]
    assert report["teacher_parameters"] == 26122 and report["student_parameters"] == 2410
    assert report["parameter_ratio"] >= 4 and report["samples"] == 1293
    assert (report["temperature"], report["alpha"], report["epochs"], report["loss"]) == (4.0, 0.7, 60, "kl")
    assert messages[-1].startswith("student: 2,410 parameters, 10.8x fewer parameters than the teacher; trained in ")
    assert report["teacher_onnx_bytes"] / report["student_onnx_bytes"] >= 4  # ONNX bytes, both fp32
    assert sections[0].startswith("## Distillation\n") and "| parameters | 26122 | 2,410 |" in sections[0]

    evaluator = AccuracyEvaluator(config, reference)
    outcome = compress_and_gate(config, reference, evaluator, student_fp32, folder, Steps())
    assert outcome.applied["method"] == "dynamic-int8" and outcome.failure is None
    assert teacher["fp32"].stat().st_size / outcome.path.stat().st_size >= 10
    for gate in (evaluator.gate(student_fp32), outcome.gate):
        assert gate.passed, gate.explain()  # within 1 point of the teacher on the held-out split
        assert gate.reference - gate.candidate <= 0.01 and gate.reference > 0.95


def test_undertrained_student_fails_the_gate(teacher) -> None:
    # The teacher may be an ONNX model too: its soft targets come from onnxruntime.
    config = load_config(EXAMPLE, {"distill.epochs": 2})
    reference = Reference(teacher["fp32"], None, ["pixels"])
    student, report = distill(config, reference)
    assert "teacher_parameters" not in report
    path = export_onnx(student, config.export, teacher["folder"] / "undertrained.onnx")
    gate = AccuracyEvaluator(config, reference).gate(path)
    assert not gate.passed and gate.candidate < 0.93
    assert "accuracy loss = " in gate.explain() and "MISSED by" in gate.explain()


def test_a_student_that_misses_the_gate_is_named_as_the_loss(teacher) -> None:
    """When the distilled student already fails on its own, the gate's advice names
    distillation, not the int8 compression that followed it."""
    from slimserve.build.compression.stage import compress_and_gate
    from slimserve.build.pipeline.progress import Steps

    config = load_config(EXAMPLE, {"distill.epochs": 2})
    reference = Reference(teacher["fp32"], None, ["pixels"])
    student, _ = distill(config, reference)
    path = export_onnx(student, config.export, teacher["folder"] / "undertrained-student.onnx")
    outcome = compress_and_gate(config, reference, AccuracyEvaluator(config, reference), path, teacher["folder"], Steps())
    assert not outcome.gate.passed and outcome.gate.lost_in == "distill"
    advice = outcome.gate.explain()
    assert "the distilled student already misses the gate before compression, so distillation lost it" in advice
    assert "gentler compression" not in advice


def test_training_is_seeded(teacher) -> None:
    from torch import nn

    config = load_config(EXAMPLE, {"distill.epochs": 2}).distill
    rng = np.random.default_rng(0)
    inputs = {"pixels": rng.random((200, 64), dtype=np.float32)}
    targets = rng.normal(size=(200, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 200)
    weights = []
    for _ in range(2):
        student = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
        for parameter in student.parameters():  # same start
            nn.init.constant_(parameter, 0.01)
        train_student(student, inputs, ["pixels"], targets, labels, config)
        weights.append(np.concatenate([p.detach().numpy().ravel() for p in student.parameters()]))
    assert np.array_equal(weights[0], weights[1])
    assert parameter_count(student) == 64 * 8 + 8 + 8 * 10 + 10


def test_labels_needed_when_alpha_below_one(teacher, tmp_path: Path) -> None:
    example = tmp_path / "ex"
    shutil.copytree(EXAMPLE, example)
    (example / "unlabelled.py").write_text(
        "import numpy as np\n\ndef train():\n    return {'pixels': np.zeros((4, 64), dtype=np.float32)}, None\n"
    )
    config = load_config(example, {"distill.data": "unlabelled.py:train"})
    with pytest.raises(ConfigError, match=r"^distill.alpha = 0.7 gives 0.3 weight to the labels, but distill.data returned no labels; set alpha = 1.0"):
        distill(config, Reference(teacher["fp32"], None, ["pixels"]))


@pytest.mark.parametrize(
    "override,message",
    [
        ({"distill.data": "data.py:heldout"}, "  distill.data: must not be validation.data or validation.calibration (train on other data)"),
        ({"distill.loss": "kl", "validation.metric": "cosine"}, "  distill.loss: 'kl' needs class logits (validation.metric = 'accuracy'); use 'cosine' or 'mse' for metric 'cosine'"),
        ({"distill.temperature": 0}, "  distill.temperature: Input should be greater than 0"),
        ({"distill.alpha": 1.5}, "  distill.alpha: Input should be less than or equal to 1"),
        ({"distill.student": None}, "  distill.student: Input should be a valid string"),
    ],
)
def test_distill_config_errors(override: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, override)
    assert message in str(caught.value).splitlines(), str(caught.value)


def test_student_factory_must_build_a_module(teacher, tmp_path: Path) -> None:
    example = tmp_path / "ex"
    shutil.copytree(EXAMPLE, example)
    (example / "bad.py").write_text("def build():\n    return 42\n")
    config = load_config(example, {"distill.student": "bad.py:build"})
    with pytest.raises(ConfigError, match=r"^distill.student bad.py:build must return a torch.nn.Module, got int$"):
        distill(config, Reference(teacher["fp32"], None, ["pixels"]))
