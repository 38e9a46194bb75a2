"""Calibration data for static int8, as onnxruntime's ``CalibrationDataReader`` wants it.

``ArrayCalibrationReader`` serves in-memory input arrays one sample per feed (the search also
uses it for its output probe); ``calibration_reader`` turns whatever ``compress`` was given (a
reader, a dict of arrays, or a callable returning a reader) into a reader capped at
``calibration_samples``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class ArrayCalibrationReader:
    """onnxruntime CalibrationDataReader over in-memory arrays, one sample per feed;
    ``rewind`` lets one reader serve several calibrations.

    Token inputs padded to a common length (an ``attention_mask`` input beside them) are cut
    back to each sample's own length, so padding never widens the calibrated ranges."""

    def __init__(self, inputs: Mapping[str, np.ndarray], limit: int | None = None, trim_padding: bool = True) -> None:
        self.trim_padding = trim_padding
        count = len(next(iter(inputs.values())))
        if limit is not None:
            count = min(count, limit)
        self._inputs = {name: np.asarray(array) for name, array in inputs.items()}
        self._count = count
        self._index = 0
        mask = self._inputs.get("attention_mask")
        self._lengths = None
        if mask is not None and mask.ndim == 2:
            # last non-padding position + 1 (right padding), at least one token
            positions = np.arange(mask.shape[1])[None, :]
            self._lengths = np.maximum(((mask != 0) * (positions + 1)).max(axis=1), 1)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._index >= self._count:
            return None
        index = self._index
        self._index += 1
        feed = {name: array[index : index + 1] for name, array in self._inputs.items()}
        if self._lengths is not None and self.trim_padding:
            length, padded = int(self._lengths[index]), self._inputs["attention_mask"].shape[1]
            feed = {
                name: array[:, :length] if array.ndim == 2 and array.shape[1] == padded else array
                for name, array in feed.items()
            }
        return feed

    def rewind(self) -> None:
        self._index = 0

    def __len__(self) -> int:
        return self._count

    # Some onnxruntime tools (qdq_loss_debug) iterate the reader instead of calling get_next.
    def __iter__(self) -> ArrayCalibrationReader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        feed = self.get_next()
        if feed is None:
            raise StopIteration
        return feed


class _LimitedReader:
    def __init__(self, reader: Any, limit: int) -> None:
        self._reader, self._left = reader, limit

    def get_next(self) -> Any:
        if self._left <= 0:
            return None
        self._left -= 1
        return self._reader.get_next()


def calibration_reader(calibration: Any, limit: int | None) -> Any:
    """A reader over ``calibration`` (a reader, a dict of input arrays, a callable returning a
    reader, or None), rewound, serving at most ``limit`` samples."""
    if calibration is None:
        return None
    if isinstance(calibration, Mapping):
        return ArrayCalibrationReader(calibration, limit)
    if callable(calibration) and not hasattr(calibration, "get_next"):
        calibration = calibration()
    if hasattr(calibration, "rewind"):
        calibration.rewind()
    return _LimitedReader(calibration, limit) if limit is not None else calibration
