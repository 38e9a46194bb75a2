"""Train the digits MLP deterministically (seeded, a few seconds on one CPU core).

    python examples/digits/train.py            # writes examples/digits/weights.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import heldout, train_split  # noqa: E402
from model import build_model  # noqa: E402


def train(weights_path: Path = HERE / "weights.safetensors", epochs: int = 60, seed: int = 0) -> float:
    """Train, save the state dict as safetensors, return held-out accuracy."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    x, y = (torch.from_numpy(a) for a in train_split())
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    inputs, labels = heldout()
    with torch.no_grad():
        predicted = model(torch.from_numpy(inputs["pixels"])).argmax(dim=1).numpy()
    accuracy = float((predicted == labels).mean())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights_path))
    return accuracy


if __name__ == "__main__":
    print(f"held-out accuracy: {train():.4f}")
