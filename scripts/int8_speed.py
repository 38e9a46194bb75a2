"""Speed and session-creation cost of int8 candidates of a text model, interleaved, as served.

    .venv/bin/python scripts/int8_speed.py FP32.onnx NAME=MODEL.onnx [NAME=MODEL.onnx ...]
        [--threads 1] [--rounds 15]

Every candidate is opened as the handler would serve it (``slimserve.handler.model.session_options``
with the options the build derives from the model: ``build.gate.portability.serving_options``);
a candidate given as ``NAME=MODEL.onnx@basic`` / ``@extended`` / ``@extended+x64`` is opened at
that level instead (``+x64``: session.x64quantprecision = 1 on any CPU). fp32 runs at
onnxruntime's defaults (level all) and at level basic; ratios are to the faster of the two.
Rounds go model by model (interleaved), so background load hits all alike; one intra-op thread
is timed in CPU time of the calling thread, more in wall time. Inputs are the benchmark's token
feeds (``slimserve.build.bench.speed.text_feed``) at 1 x 16 and 8 x 64 tokens. Prints JSON with
the host's CPU, its int8 instruction sets and the load averages before and after.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from slimserve.build.bench.speed import text_feed
from slimserve.build.gate.portability import serving_options
from slimserve.build.machine import cpu_info, load_average
from slimserve.handler.model import X64_QUANT_PRECISION, session_options

LEVELS = {
    "basic": {"graph_optimization_level": "basic"},
    "extended": {"graph_optimization_level": "extended"},
    "extended+x64": {"graph_optimization_level": "extended", "config": {X64_QUANT_PRECISION: "1"}},
}


def _options(path: Path, spec: str | None, threads: int) -> ort.SessionOptions:
    if spec == "defaults":
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    else:
        options = session_options(threads, LEVELS[spec] if spec else serving_options(path))
    options.log_severity_level = 3
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path)
    parser.add_argument("candidates", nargs="+", help="NAME=MODEL.onnx[@basic|@extended|@extended+x64]")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    models: dict[str, tuple[Path, str | None]] = {"fp32 (defaults)": (args.fp32, "defaults"), "fp32 (basic)": (args.fp32, "basic")}
    for item in args.candidates:
        name, _, target = item.partition("=")
        path, _, level = target.partition("@")
        models[name] = (Path(path), level or None)
    info = cpu_info()
    result: dict[str, Any] = {"cpu": info["model"], "int8_flags": info["int8_flags"], "threads": args.threads,
                              "load_before": load_average(), "session_creation_ms": {}, "cells": {}}
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    creation: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (path, level) in models.items():
            started = clock()
            ort.InferenceSession(str(path), _options(path, level, args.threads), providers=["CPUExecutionProvider"])
            creation[name].append((clock() - started) * 1e3)
    result["session_creation_ms"] = {name: round(float(np.median(values)), 2) for name, values in creation.items()}
    sessions = {
        name: ort.InferenceSession(str(path), _options(path, level, args.threads), providers=["CPUExecutionProvider"])
        for name, (path, level) in models.items()
    }
    for batch, tokens, repeats in ((1, 16, 20), (8, 64, 2)):
        feed = text_feed(sessions["fp32 (basic)"], batch, tokens)
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for session in sessions.values():
            for _ in range(3):
                session.run(None, feed)
        for _ in range(args.rounds):
            for name, session in sessions.items():
                for _ in range(repeats):
                    started = clock()
                    session.run(None, feed)
                    times[name].append((clock() - started) * 1e3)
        medians = {name: float(np.median(values)) for name, values in times.items()}
        fp32 = min(medians["fp32 (defaults)"], medians["fp32 (basic)"])
        result["cells"][f"{batch}x{tokens}"] = {
            name: {"median_ms": round(value, 3), "x_fp32": round(fp32 / value, 2)} for name, value in medians.items()
        }
    result["load_after"] = load_average()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
