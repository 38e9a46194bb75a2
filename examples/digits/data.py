"""The digits data, split once with a fixed seed: train / calibration / held-out test.

scikit-learn ships the 1,797 8x8 images, so nothing is downloaded. Pixel values are scaled
to [0, 1] (the raw data is 0..16); the API takes the same scaled 64 floats per image.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 20261129


def _split() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    x_train, x_cal, y_train, y_cal = train_test_split(
        x_train, y_train, test_size=0.1, random_state=SEED, stratify=y_train
    )
    return {"train": (x_train, y_train), "calibration": (x_cal, y_cal), "heldout": (x_test, y_test)}


def train_split() -> tuple[np.ndarray, np.ndarray]:
    return _split()["train"]


def calibration() -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = _split()["calibration"]
    return {"pixels": x}, y


def heldout() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """360 images the training never saw: the accuracy gate's data."""
    x, y = _split()["heldout"]
    return {"pixels": x}, y
