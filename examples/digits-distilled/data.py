"""The digits example's data, reused: the same seeded split into train / calibration / held-out.

``train`` is the distillation data (the teacher's soft targets are computed on it); the gate's
held-out set and the calibration set are exactly those of examples/digits, never trained on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_DIGITS_DATA = Path(__file__).resolve().parent.parent / "digits" / "data.py"
_spec = importlib.util.spec_from_file_location("_slimserve_digits_data", _DIGITS_DATA)
assert _spec is not None and _spec.loader is not None
_digits = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_digits)


def train() -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = _digits.train_split()
    return {"pixels": x}, y


calibration = _digits.calibration
heldout = _digits.heldout
