"""Fresh interpreters for the cold-start section (cold.py): the driver each child runs, the
environment it gets, one timed run from spawn to first answer, and an import profile.

Timestamps come from the child's ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, shared by
all processes) against the parent's just before spawning, so pipe and exit latency do not
count.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARK = "@@SLIMSERVE-BENCH@@"

# Runs in the child. Only the standard library before the timed imports; the parent reads the
# line that starts with MARK (Powertools logs JSON to the same stdout).
DRIVER = rf"""
import time
T0 = time.perf_counter()
import json, os, sys

def _mark(**values):
    sys.__stdout__.write({MARK!r} + json.dumps(values) + "\n")
    sys.__stdout__.flush()

if os.environ["BENCH_MODE"] == "floor":
    import numpy
    import onnxruntime
    T1 = time.perf_counter()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(os.environ["BENCH_THREADS"])
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # The handler's options (handler/model.py session_options) with the manifest's
    # runtime.onnxruntime, spelled out: the floor imports nothing of slimserve.
    serving = json.loads(os.environ.get("BENCH_ORT_OPTIONS") or "{{}}")
    levels = onnxruntime.GraphOptimizationLevel
    options.graph_optimization_level = {{"basic": levels.ORT_ENABLE_BASIC, "extended": levels.ORT_ENABLE_EXTENDED,
                                         "all": levels.ORT_ENABLE_ALL}}[serving.get("graph_optimization_level", "basic")]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    config = dict(serving.get("config") or {{}})
    if serving.get("config_without_vnni"):  # as handler/model.py int8_kernels_can_saturate
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features
            vnni = features.get("AVX512VNNI", False)
        except ImportError:
            vnni = False
        if not vnni:
            config.update(serving["config_without_vnni"])
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    session = onnxruntime.InferenceSession(os.environ["BENCH_ONNX"], sess_options=options, providers=["CPUExecutionProvider"])
    T2 = time.perf_counter()
    # The floor answers nothing: its "import + init" includes opening the session.
    _mark(start=T0, imported=T2, answered=T2, status=200)
else:
    import importlib.util
    class Context:
        function_name = "slimserve-bench"
        function_version = "$LATEST"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:slimserve-bench"
        aws_request_id = "00000000-0000-0000-0000-000000000001"
        log_group_name = "/aws/lambda/slimserve-bench"
        log_stream_name = "bench"
        def get_remaining_time_in_millis(self):
            return 20000
    module_name, attribute = os.environ["BENCH_HANDLER"].rsplit(".", 1)
    path = os.environ.get("BENCH_HANDLER_FILE")
    if path:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    T1 = time.perf_counter()
    with open(os.environ["BENCH_EVENT"], encoding="utf-8") as stream:
        event = json.load(stream)
    result = getattr(module, attribute)(event, Context())
    T2 = time.perf_counter()
    status = result.get("statusCode") if isinstance(result, dict) else None
    body = result.get("body", "") if isinstance(result, dict) else repr(result)
    _mark(start=T0, imported=T1, answered=T2, status=status, body=(body or "")[:300])
"""


@dataclass
class Contender:
    """One way of serving the first request: the command that spawns it and what it measured."""

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    description: str
    samples: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def base_env(tmp: Path, python_path: list[Path]) -> dict[str, str]:
    """A Lambda-like environment: nothing inherited from the suite but LD_LIBRARY_PATH."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": os.pathsep.join(str(path) for path in python_path),
        # /var/task is read-only on Lambda: no .pyc gets written next to the code.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "slimserve-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    }
    for name in ("LD_LIBRARY_PATH",):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def venv_site_packages() -> list[Path]:
    """The site-packages of the Python running the suite (the PyTorch baseline needs torch)."""
    import site

    return [Path(path) for path in site.getsitepackages() if Path(path).is_dir()]


def run_once(contender: Contender, timeout_s: float) -> dict[str, float]:
    """One spawn: total, interpreter start-up, import + init and first request, in ms."""
    spawned = time.perf_counter()
    process = subprocess.Popen(
        contender.command,
        cwd=contender.cwd,
        env=contender.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise RuntimeError(f"{contender.name}: no answer within {timeout_s:.0f} s; stderr: {stderr[-800:]}") from None
    exited = time.perf_counter()
    marks = [line[len(MARK) :] for line in stdout.splitlines() if line.startswith(MARK)]
    if not marks:
        raise RuntimeError(
            f"{contender.name}: exited with status {process.returncode} before answering; "
            f"stderr: {stderr.strip()[-1200:]}"
        )
    values = json.loads(marks[-1])
    if values.get("status") != 200:
        raise RuntimeError(f"{contender.name}: answered status {values.get('status')}: {values.get('body')}")
    start, imported, answered = values["start"], values["imported"], values["answered"]
    if not spawned <= start <= answered <= exited:
        # Not a shared monotonic clock (not Linux?): fall back to the parent's view of the exit.
        return {"total_ms": (exited - spawned) * 1e3, "interpreter_ms": float("nan"), "import_init_ms": float("nan"),
                "first_request_ms": float("nan")}
    return {
        "total_ms": (answered - spawned) * 1e3,
        "interpreter_ms": (start - spawned) * 1e3,
        "import_init_ms": (imported - start) * 1e3,
        "first_request_ms": (answered - imported) * 1e3,
    }


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(contender: Contender, timeout_s: float) -> dict[str, Any]:
    """One extra run under ``-X importtime``: self time summed by top-level package (ms), the
    largest first. Import timing inflates times a little; read it for proportions."""
    command = [contender.command[0], "-X", "importtime", *contender.command[1:]]
    completed = subprocess.run(
        command, cwd=contender.cwd, env=contender.env, capture_output=True, text=True, errors="replace",
        timeout=timeout_s, check=False,
    )
    by_package: dict[str, int] = {}
    for line in completed.stderr.splitlines():
        found = _IMPORT_LINE.match(line)
        if found:
            top = found.group(4).split(".", 1)[0]
            by_package[top] = by_package.get(top, 0) + int(found.group(1))
    ranked = sorted(by_package.items(), key=lambda item: -item[1])
    return {
        "total_self_ms": sum(by_package.values()) / 1e3,
        "top_packages_self_ms": {name: value / 1e3 for name, value in ranked[:15]},
        "all_packages_self_ms": {name: value / 1e3 for name, value in ranked},
    }
