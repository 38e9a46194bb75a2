"""Handler settings, read once from the environment at import (Lambda's init phase).

Explicit arguments beat the environment: ``Settings.from_env(model_dir=...)`` lets tests and the
benchmark point at a model without touching ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from slimserve.handler.constants import (
    ENV_LOG_LEVEL,
    ENV_MODEL_DIR,
    ENV_MODEL_S3_REQUIRED,
    ENV_MODEL_S3_VERSION,
    ENV_THREADS,
)

# The zip's root is Lambda's task root; this package lives in <root>/slimserve/handler/.
_TASK_ROOT = Path(__file__).resolve().parent.parent.parent


def _cpu_count() -> int:
    # os.sched_getaffinity respects cgroups/affinity; Lambda grants ~1 vCPU per 1,769 MB.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class SettingsError(ValueError):
    """An environment variable has a value the handler cannot use."""


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}")
    return value


class S3Model(NamedTuple):  # NamedTuples: cheap to define at cold start (messages.py)
    """Where the model lives when the stack keeps it in S3 (package = "s3")."""

    bucket: str
    key: str
    sha256: str
    version_id: str | None = None


class Settings(NamedTuple):
    model_dir: Path
    # onnxruntime on Lambda must get explicit thread counts: with 0 ("all cores") it tries to
    # pin threads and fails with "pthread_setaffinity_np failed".
    intra_op_threads: int
    log_level: str = "INFO"
    model_s3: S3Model | None = None

    @classmethod
    def from_env(
        cls,
        *,
        model_dir: Path | None = None,
        intra_op_threads: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> "Settings":
        env = os.environ if environ is None else environ
        if model_dir is None:
            model_dir = Path(env.get(ENV_MODEL_DIR) or _TASK_ROOT / "model")
        if intra_op_threads is None:
            raw = env.get(ENV_THREADS)
            intra_op_threads = (
                _positive_int(ENV_THREADS, raw) if raw else min(_cpu_count(), 4)
            )
        return cls(
            model_dir=Path(model_dir),
            intra_op_threads=intra_op_threads,
            log_level=env.get(ENV_LOG_LEVEL, "INFO").upper(),
            model_s3=_s3_model(env),
        )


def _s3_model(env: Mapping[str, str]) -> S3Model | None:
    names = ENV_MODEL_S3_REQUIRED
    values = [env.get(name) for name in names]
    if not any(values):
        return None
    missing = [name for name, value in zip(names, values) if not value]
    if missing:
        raise SettingsError(f"the S3 model store needs all of {list(names)}; missing {missing}")
    bucket, key, sha256 = values
    return S3Model(bucket=bucket, key=key, sha256=sha256, version_id=env.get(ENV_MODEL_S3_VERSION) or None)
