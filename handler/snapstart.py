"""SnapStart: prime before the snapshot, refresh after restore.

Lambda SnapStart (Python 3.12+) snapshots the initialised execution environment and restores it
for cold starts. Runtime hooks from ``snapshot_restore_py`` (shipped in Lambda's Python runtime,
with awslambdaric) run code at both ends:
- before the snapshot, one inference primes onnxruntime (allocations, kernel selection, page
  faults), so the first request after a restore is as fast as a warm one;
- after a restore, state that must differ per environment is refreshed: the random module's
  seed (every restored environment would otherwise share the snapshot's).
Outside Lambda (tests, ``slimserve local``) the package is absent and nothing is registered.
"""

from __future__ import annotations

import logging
import random
from typing import Callable

logger = logging.getLogger("slimserve")


def _reseed() -> None:
    random.seed()  # from os.urandom
    logger.info("restored from a SnapStart snapshot")


def register_hooks(warm_up: Callable[[], None]) -> bool:
    """Register the hooks; False when not running on a runtime that offers them."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(warm_up)
    register_after_restore(_reseed)
    return True
