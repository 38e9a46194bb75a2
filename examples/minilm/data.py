"""The MiniLM example's text data: plain UTF-8 files, one sentence (or paragraph) per line.

- ``heldout.txt``: the embedding gate's held-out set (232 varied texts: everyday sentences,
  paraphrase pairs, questions, code, numbers, URLs, emoji, one-word replies, 24 lines in 18
  other languages, and five paragraphs longer than 128 tokens, one of 297 so truncation at 256
  is exercised). It is used for nothing else: no training, no calibration. (It did show which
  nodes to keep in fp32; a stricter setup would pick those on a third set.)
- ``calibration.txt``: a separate, smaller set for static int8 calibration; it shares no line
  with the held-out set.

Both functions return ``({"text": array of str}, None)``: the API's input, no labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def read_lines(path: Path) -> np.ndarray:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return np.array(lines, dtype=object)


def heldout() -> tuple[dict[str, np.ndarray], None]:
    return {"text": read_lines(HERE / "heldout.txt")}, None


def calibration() -> tuple[dict[str, np.ndarray], None]:
    return {"text": read_lines(HERE / "calibration.txt")}, None
