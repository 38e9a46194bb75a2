"""The student: a 64 -> 32 -> 10 MLP, 2,410 parameters (the 64-128-128-10 teacher has 26,122)."""

from __future__ import annotations

from torch import nn


def build_student(hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
