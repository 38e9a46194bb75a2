"""Knowledge distillation ([distill] in slimserve.toml): train a smaller student on the
original model's outputs, then export and gate the student like any model.

The teacher is the build's reference (the PyTorch module, or the fp32 ONNX model when the
source is an ONNX file): its outputs on the training data are computed once, so the teacher
never has to be a PyTorch module. Losses:

- ``kl`` (classification): ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
  + (1 - alpha) * cross_entropy(student, labels)`` (Hinton et al.; the T^2 keeps the soft
  term's gradient scale independent of T);
- ``mse`` / ``cosine`` (embeddings): match the teacher's output vectors; ``alpha`` < 1 is
  only meaningful with labels and is rejected otherwise.

Training is seeded (``distill.seed``), so a rebuild trains the same student. The gate then compares the student against the *teacher*: the tolerance is what the
user accepted to lose relative to the original model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from slimserve.build.config import BuildConfig, DistillConfig
from slimserve.build.errors import ConfigError
from slimserve.build.gate.reference import Reference, reference_predictor
from slimserve.build.gate.validate import batched
from slimserve.build.pipeline.source import load_callable


def parameter_count(model: Any) -> int:
    return int(sum(parameter.numel() for parameter in model.parameters()))


def teacher_outputs(reference: Reference, inputs: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
    return batched(reference_predictor(reference), inputs, batch_size).astype(np.float32)


def train_student(
    student: Any,
    inputs: dict[str, np.ndarray],
    input_names: list[str],
    targets: np.ndarray,
    labels: np.ndarray | None,
    config: DistillConfig,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``student`` in place on the teacher's ``targets``; returns a small history."""
    import torch

    if config.alpha < 1.0 and labels is None:
        raise ConfigError(
            f"distill.alpha = {config.alpha} gives {1 - config.alpha:g} weight to the labels, but distill.data "
            "returned no labels; set alpha = 1.0 (soft targets only) or return labels"
        )
    if config.loss == "kl" and labels is not None and config.alpha < 1.0:
        labels = np.asarray(labels).astype(np.int64)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    tensors = [torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in input_names]
    teacher = torch.from_numpy(targets)
    hard = torch.from_numpy(labels) if labels is not None and config.alpha < 1.0 else None
    optimizer = torch.optim.Adam(student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    count = len(teacher)
    temperature = config.temperature
    history = []
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        student.train()
        for epoch in range(config.epochs):
            total = _epoch(student, optimizer, tensors, teacher, hard, generator, count, config, temperature)
            history.append(total / count)
            if log and (epoch + 1) % max(1, config.epochs // 5) == 0:
                log(f"distill epoch {epoch + 1}/{config.epochs}: loss {history[-1]:.4f}")
    finally:
        torch.set_num_threads(previous_threads)
    student.eval()
    return {"epochs": config.epochs, "final_loss": history[-1], "seconds": time.perf_counter() - started}


def _epoch(
    student: Any, optimizer: Any, tensors: list[Any], teacher: Any, hard: Any, generator: Any, count: int,
    config: DistillConfig, temperature: float,
) -> float:
    """One pass over the data in a seeded random order; returns the summed loss."""
    import torch
    from torch.nn import functional as F

    order = torch.randperm(count, generator=generator)
    total = 0.0
    for start in range(0, count, config.batch_size):
        index = order[start : start + config.batch_size]
        output = student(*(tensor[index] for tensor in tensors))
        if isinstance(output, (tuple, list)):
            output = output[0]
        target = teacher[index]
        if config.loss == "kl":
            soft = F.kl_div(
                F.log_softmax(output / temperature, dim=-1),
                F.log_softmax(target / temperature, dim=-1),
                reduction="batchmean",
                log_target=True,
            ) * temperature**2
        elif config.loss == "mse":
            soft = F.mse_loss(output, target)
        else:
            soft = (1 - F.cosine_similarity(output.flatten(1), target.flatten(1), dim=1)).mean()
        loss = config.alpha * soft
        if hard is not None:
            loss = loss + (1 - config.alpha) * F.cross_entropy(output, hard[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(index)
    return total


def distill(
    config: BuildConfig,
    reference: Reference,
    *,
    log: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Build the student (``distill.student``), train it on the teacher's outputs over
    ``distill.data``, return (student in eval mode, report). Export it with the same
    [export] section and gate it against the teacher (the build's Reference)."""
    settings = config.distill
    if settings is None:
        raise ConfigError("distill() needs a [distill] section in slimserve.toml")
    factory = load_callable(config, settings.student, "distill.student")
    student = factory()
    if not hasattr(student, "parameters"):
        raise ConfigError(f"distill.student {settings.student} must return a torch.nn.Module, got {type(student).__name__}")
    inputs, labels = _training_data(config, settings, reference.input_names)
    targets = teacher_outputs(reference, inputs)
    history = train_student(student, inputs, list(reference.input_names), targets, labels, settings, log)
    report: dict[str, Any] = {
        "student": settings.student,
        "temperature": settings.temperature,
        "alpha": settings.alpha,
        "loss": settings.loss,
        "epochs": settings.epochs,
        "samples": len(targets),
        "student_parameters": parameter_count(student),
        **{key: value for key, value in history.items() if key != "epochs"},
    }
    if reference.torch_model is not None:
        report["teacher_parameters"] = parameter_count(reference.torch_model)
        report["parameter_ratio"] = report["teacher_parameters"] / report["student_parameters"]
    if log:
        ratio = f", {report['parameter_ratio']:.1f}x fewer parameters than the teacher" if "parameter_ratio" in report else ""
        log(f"student: {report['student_parameters']:,} parameters{ratio}; trained in {history['seconds']:.1f} s")
    return student, report


def _training_data(config: BuildConfig, settings: DistillConfig, input_names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    loader = load_callable(config, settings.data, "distill.data")
    data = loader()
    if not (isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], dict)):
        raise ConfigError(f"distill.data {settings.data} must return (inputs: dict[name, array], labels or None)")
    inputs = {name: np.asarray(array) for name, array in data[0].items()}
    if set(inputs) != set(input_names):
        raise ConfigError(f"distill.data {settings.data} returned inputs {sorted(inputs)}, the model takes {sorted(input_names)}")
    labels = None if data[1] is None else np.asarray(data[1])
    return inputs, labels


def markdown(report: dict[str, Any]) -> str:
    """report.md's distillation section: teacher and student side by side, how it was trained."""
    lines = [
        "## Distillation",
        "",
        "| | teacher | student |",
        "|---|---|---|",
        f"| parameters | {report.get('teacher_parameters', 'n/a')} | {report['student_parameters']:,} |",
        f"| fp32 ONNX bytes | {report['teacher_onnx_bytes']:,} | {report['student_onnx_bytes']:,} |",
        "",
        (
            f"Trained {report['epochs']} epochs on {report['samples']} samples (temperature {report['temperature']:g}, "
            f"alpha {report['alpha']:g}, loss {report['loss']}) in {report['seconds']:.1f} s; the gate compares the "
            "student with the teacher."
        ),
    ]
    return "\n".join(lines) + "\n"
