"""Latency of an ONNX model on this machine: median and p90 of ``session.run`` after warm-up,
at an explicit onnxruntime thread count (as the Lambda handler sets it).

Small and dependency-light so the benchmark suite can reuse it:

    feed = synthetic_feed(session_for(path), free_dims=[1, 16])
    print(measure(path, feed, threads=1).median_ms)

``compare`` times several models interleaved (round-robin), so background load on a shared
machine hits all of them alike and their ratios (speed-ups) stay meaningful.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# ONNX tensor element type strings (as onnxruntime reports them) -> numpy dtypes.
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class Latency:
    median_ms: float  # wall clock
    p90_ms: float
    mean_ms: float
    runs: int
    threads: int
    # CPU time of the calling thread (single-threaded sessions only): what the run costs when
    # no other process competes for the core, so it is stable on a busy build machine.
    cpu_median_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def value(self, clock: str = "wall") -> float:
        """The median on the requested clock ("cpu" falls back to wall for multi-threaded runs)."""
        return self.cpu_median_ms if clock == "cpu" and self.cpu_median_ms is not None else self.median_ms

    def __str__(self) -> str:
        cpu = f", {self.cpu_median_ms:.3f} ms CPU" if self.cpu_median_ms is not None else ""
        return f"{self.median_ms:.3f} ms median, {self.p90_ms:.3f} ms p90{cpu} ({self.runs} runs, {self.threads} thread(s))"


def session_for(model_path: Path, threads: int = 1, *, as_served: bool = False) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op and one inter-op thread, sequential.
    ``as_served``: exactly the handler's options for this model (handler/model.py, with the
    manifest's ``runtime.onnxruntime`` the build will write: build/gate/portability.py), i.e.
    the speed the function will have; otherwise onnxruntime's defaults (all graph
    optimizations), i.e. what a user gets from the model without slimserve."""
    import onnxruntime as ort

    if as_served:
        from slimserve.build.gate.portability import serving_options
        from slimserve.handler.model import session_options

        options = session_options(threads, serving_options(model_path))
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])


def synthetic_feed(session: Any, free_dims: Sequence[int] = (1, 16), seed: int = 0) -> dict[str, np.ndarray]:
    """One input per model input; a free (symbolic) axis ``i`` takes ``free_dims[i]`` (the last
    value for axes beyond the list). Floats are uniform in [0, 1); integers are ones (valid
    token ids, masks and segment ids alike), which is all timing needs."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in session.get_inputs():
        shape = [
            dim if isinstance(dim, int) and dim > 0 else int(free_dims[min(axis, len(free_dims) - 1)])
            for axis, dim in enumerate(spec.shape)
        ]
        dtype = _ORT_TYPES.get(spec.type)
        if dtype is None:
            raise ValueError(f"cannot synthesise input {spec.name!r} of type {spec.type}; pass a feed")
        if np.issubdtype(dtype, np.floating):
            feed[spec.name] = rng.random(shape).astype(dtype)
        else:
            feed[spec.name] = np.ones(shape, dtype=dtype)
    return feed


def _summary(samples: Sequence[tuple[float, float]], threads: int) -> Latency:
    values = np.asarray([wall for wall, _ in samples], dtype=np.float64) * 1e3
    cpu = np.asarray([cpu for _, cpu in samples], dtype=np.float64) * 1e3
    return Latency(
        median_ms=float(np.median(values)),
        p90_ms=float(np.percentile(values, 90)),
        mean_ms=float(values.mean()),
        runs=len(values),
        threads=threads,
        cpu_median_ms=float(np.median(cpu)) if threads == 1 else None,
    )


def _time_runs(session: Any, feed: Mapping[str, np.ndarray], runs: int) -> list[tuple[float, float]]:
    """(wall, calling-thread CPU) seconds per run. With one intra-op thread onnxruntime runs
    the graph on the calling thread, so its CPU time is the run's compute time."""
    samples = []
    run = session.run
    wall, cpu = time.perf_counter, time.thread_time
    for _ in range(runs):
        started, started_cpu = wall(), cpu()
        run(None, feed)
        samples.append((wall() - started, cpu() - started_cpu))
    return samples


def measure(
    model: Path | Any,
    feed: Mapping[str, np.ndarray] | None = None,
    *,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    free_dims: Sequence[int] = (1, 16),
    as_served: bool = False,
) -> Latency:
    """Median / p90 of ``runs`` timed ``session.run`` calls after ``warmup`` untimed ones.
    ``model`` is a path (a session is made with ``threads``, ``as_served`` as in session_for)
    or an existing session."""
    session = session_for(Path(model), threads, as_served=as_served) if isinstance(model, (str, Path)) else model
    feed = dict(feed) if feed is not None else synthetic_feed(session, free_dims)
    for _ in range(warmup):
        session.run(None, feed)
    return _summary(_time_runs(session, feed, runs), threads)


def compare(
    models: Mapping[str, Path],
    feed: Mapping[str, np.ndarray] | None = None,
    *,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    rounds: int = 5,
    free_dims: Sequence[int] = (1, 16),
    served: Collection[str] = (),
) -> dict[str, Latency]:
    """Time several models round-robin: ``rounds`` rounds of ``runs / rounds`` runs each, so
    noise from other processes spreads evenly. Returns each model's summary over all its runs.
    The models named in ``served`` are opened as the handler will serve them (session_for)."""
    sessions = {name: session_for(Path(path), threads, as_served=name in served) for name, path in models.items()}
    feeds = {
        name: dict(feed) if feed is not None else synthetic_feed(session, free_dims)
        for name, session in sessions.items()
    }
    for name, session in sessions.items():
        for _ in range(warmup):
            session.run(None, feeds[name])
    per_round = max(1, runs // max(1, rounds))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in sessions}
    for _ in range(max(1, rounds)):
        for name, session in sessions.items():
            samples[name] += _time_runs(session, feeds[name], per_round)
    return {name: _summary(values, threads) for name, values in samples.items()}


def cpu_summary() -> str:
    """What matters for int8 speed on this machine: the CPU model and its dot-product flags."""
    from slimserve.build.machine import cpu_info

    info = cpu_info()
    present = info["int8_flags"]
    return f"{info['model']} ({', '.join(present) if present else 'no AVX2/VNNI/dot-product flags'})"
