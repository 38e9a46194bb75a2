"""A small MLP for 8x8 digits: 64 -> 128 -> 128 -> 10 logits."""

from __future__ import annotations

from torch import nn


def build_model(hidden: int = 128) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )
