"""What the auto search's trials depend on besides the models: the thread count Lambda gives."""

from __future__ import annotations

import os

from slimserve.build.compression.trials import lambda_threads


def test_lambda_threads_follow_memory() -> None:
    assert lambda_threads(128) == 1 and lambda_threads(1024) == 1 and lambda_threads(1769) == 1
    assert lambda_threads(3538) == min(2, os.cpu_count() or 1)
