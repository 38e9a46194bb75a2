"""The step list: ✓ only for a step that succeeded; ✗ with the reason for one that raised or
that its block marked failed (the gate's step returns normally when the gate fails)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from slimserve.build.pipeline.progress import Steps


def _steps() -> Steps:
    return Steps(Console(file=io.StringIO(), width=200))


def test_a_step_marked_failed_gets_a_cross_and_its_reason() -> None:
    steps = _steps()
    with steps.step("validate", "accuracy gate") as step:
        step.fail("gate FAILED")
    printed = steps.console.file.getvalue()
    assert printed.startswith("✗ validate accuracy gate (gate FAILED, 0.0 s)") and "✓" not in printed
    assert "validate" in steps.timings


def test_a_step_that_raises_gets_a_cross_and_one_that_ends_a_tick() -> None:
    steps = _steps()
    with steps.step("export", "PyTorch -> ONNX"):
        pass
    with pytest.raises(RuntimeError), steps.step("bundle", "lambda.zip"):
        raise RuntimeError("pip failed")
    lines = steps.console.file.getvalue().splitlines()
    assert lines[0].startswith("✓ export PyTorch -> ONNX ") and lines[1].startswith("✗ bundle lambda.zip (failed after ")
