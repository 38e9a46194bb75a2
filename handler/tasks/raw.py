"""``task = "raw"``: tensors in, tensors out: the model's own inputs and outputs."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from slimserve.handler.model import LoadedModel
from slimserve.handler.tasks.base import check_io_matches_session


class RawTask:
    task: ClassVar[str] = "raw"

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        check_io_matches_session(model, [spec.name for spec in model.inputs])

    def infer(self, tensors: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        return self.model.run(tensors)
