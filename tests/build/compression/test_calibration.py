"""Calibration readers for static int8: in-memory arrays one sample at a time, padding cut,
and whatever compress() is given turned into a reader capped at calibration_samples."""

from __future__ import annotations

import numpy as np

from slimserve.build.compression.calibration import ArrayCalibrationReader, calibration_reader


def test_calibration_reader_cuts_token_padding_per_sample() -> None:
    ids = np.array([[101, 7, 102, 0, 0], [101, 8, 9, 10, 102]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    reader = ArrayCalibrationReader({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    feeds = list(reader)
    assert [feed["input_ids"].tolist() for feed in feeds] == [[[101, 7, 102]], [[101, 8, 9, 10, 102]]]
    assert all(feed["attention_mask"].all() and feed["token_type_ids"].shape == feed["input_ids"].shape for feed in feeds)
    reader.rewind()
    reader.trim_padding = False  # histogram calibrators (Entropy, Percentile) need one shape
    assert [feed["input_ids"].shape for feed in reader] == [(1, 5), (1, 5)]
    assert len(ArrayCalibrationReader({"x": np.zeros((10, 2))}, limit=3)) == 3


def _drain(reader) -> list[float]:
    values = []
    while (feed := reader.get_next()) is not None:
        values.append(float(feed["x"][0, 0]))
    return values


def test_calibration_reader_accepts_arrays_readers_and_factories() -> None:
    arrays = {"x": np.arange(5, dtype=np.float32).reshape(5, 1)}
    assert calibration_reader(None, 3) is None
    assert _drain(calibration_reader(arrays, 3)) == [0.0, 1.0, 2.0]
    used = ArrayCalibrationReader(arrays)
    assert _drain(used) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert _drain(calibration_reader(used, 2)) == [0.0, 1.0]  # rewound first, then capped
    assert _drain(calibration_reader(lambda: ArrayCalibrationReader(arrays), None)) == [0.0, 1.0, 2.0, 3.0, 4.0]
