"""Section 3, cold start: process start to the first successful infer response, in a fresh
interpreter, for slimserve's handler and for what it is compared with, interleaved.

Contenders (each run spawns a new process; runs go floor, slimserve, baselines, floor, ...):

- ``floor``: the zip's target Python (``-S``: no site-packages) on the unpacked lambda.zip that
  only imports onnxruntime and numpy and opens the InferenceSession on ``model/model.onnx``
  with the handler's thread counts and session options. Nothing can serve faster than this.
- ``slimserve``: same interpreter, same folder: imports ``slimserve.handler.main`` (the Lambda handler
  string in the manifest) and calls ``handler(event, context)`` with a recorded HTTP API event
  carrying the infer request; done when it returns status 200.
- ``pytorch_fastapi``: what a user would write without slimserve (build/bench/baselines/):
  FastAPI + Mangum serving the original PyTorch module and weights; the project venv's Python
  (it needs torch), also ``-S`` with only the venv's site-packages on the path.
- ``onnx_fastapi``: a minimal hand-written FastAPI + Mangum + onnxruntime handler on the same
  shipped model, target Python, the unpacked zip plus a FastAPI layer installed for the target
  Python and byte-compiled by it (skipped when that layer cannot be installed).

Timestamps come from the child's ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, shared by
all processes) against the parent's just before spawning, so pipe and exit latency do not
count. One untimed run of each contender first warms the page cache: these are warm-cache
cold starts (what a re-used Lambda host sees; a first-ever start from a cold disk is slower).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from slimserve.build.bench.common import PROJECT_ROOT, Example, http_api_event, infer_body
from slimserve.build.bench.stats import ratio

BASELINES = Path(__file__).resolve().parent / "baselines"
MARK = "@@SLIMSERVE-BENCH@@"
CONTENDERS = ("floor", "slimserve", "pytorch_fastapi", "onnx_fastapi")
LABELS = {
    "floor": "floor (import onnxruntime + numpy, open session)",
    "slimserve": "slimserve slimserve.handler.main",
    "pytorch_fastapi": "PyTorch + FastAPI + Mangum baseline",
    "onnx_fastapi": "hand-written onnxruntime + FastAPI + Mangum",
}

# Runs in the child. Only the standard library before the timed imports; the parent reads the
# line that starts with MARK (Powertools logs JSON to the same stdout).
_DRIVER = rf"""
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
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    description: str
    samples: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _base_env(tmp: Path, python_path: list[Path]) -> dict[str, str]:
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


def handler_threads() -> int:
    """The handler's default intra-op thread count on this machine (handler/settings.py)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def venv_site_packages() -> list[Path]:
    import site

    return [Path(path) for path in site.getsitepackages() if Path(path).is_dir()]


def fastapi_layer(python: str, target_version: str, architecture: str, console: Console) -> tuple[Path | None, str]:
    """FastAPI (+ starlette, anyio...) installed for the target Python and byte-compiled by it,
    under .cache/bench: what the hand-written onnxruntime + FastAPI handler adds to the zip."""
    from importlib.metadata import version

    from slimserve.build.errors import BundleError
    from slimserve.build.pipeline.bundle import install_dependencies

    try:
        requirement = f"fastapi=={version('fastapi')}"
    except Exception:  # noqa: BLE001 - no FastAPI here: nothing to compare with
        return None, "FastAPI is not installed in the build environment"
    try:
        layer = install_dependencies(
            [requirement], python=target_version, architecture=architecture, cache=PROJECT_ROOT / ".cache" / "bench"
        )
    except (BundleError, OSError, TypeError, ValueError) as exc:
        return None, f"cannot install {requirement} for Python {target_version}: {str(exc)[:300]}"
    stamp = layer / ".bench-compiled"
    if not stamp.is_file():
        console.print(f"byte-compiling the FastAPI layer {layer} with {python}")
        subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(layer)],
            capture_output=True,
            check=False,
        )
        stamp.write_text("compiled\n")
    return layer, ""


def _run_once(contender: Contender, timeout_s: float) -> dict[str, float]:
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


def init_components(example: Example, threads: int, repeats: int = 3) -> dict[str, float]:
    """The handler's init steps timed one by one in this process (warm imports, this Python):
    where the init time beyond the floor's session goes. Medians of ``repeats``."""
    import numpy as np

    from slimserve.handler.app import create_app
    from slimserve.handler.model import load_model, sha256_of

    timings: dict[str, list[float]] = {"sha256_ms": [], "load_model_ms": [], "create_app_ms": []}
    for _ in range(repeats):
        started = time.perf_counter()
        sha256_of(example.model_path)
        timings["sha256_ms"].append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        model = load_model(example.dist, intra_op_threads=threads)
        timings["load_model_ms"].append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        create_app(model)
        timings["create_app_ms"].append((time.perf_counter() - started) * 1e3)
    result = {key: float(np.median(values)) for key, values in timings.items()}
    result["session_open_ms"] = result["load_model_ms"] - result["sha256_ms"]
    return result


def _summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    import numpy as np

    if not samples:
        return {"runs": 0}
    result: dict[str, Any] = {"runs": len(samples)}
    for key in ("total_ms", "interpreter_ms", "import_init_ms", "first_request_ms"):
        values = np.array([sample[key] for sample in samples], dtype=float)
        result[f"median_{key}"] = float(np.median(values))
    totals = np.array([sample["total_ms"] for sample in samples], dtype=float)
    result["min_total_ms"] = float(totals.min())
    result["max_total_ms"] = float(totals.max())
    result["samples_total_ms"] = [round(float(value), 2) for value in totals]
    return result


def measure_cold_start(
    example: Example,
    *,
    runs: int = 7,
    warmup: int = 1,
    cache_dir: Path | None = None,
    include_onnx_fastapi: bool = True,
    timeout_s: float = 120.0,
    console: Console | None = None,
    status: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    from slimserve.build.local.taskroot import close_work_dir, new_work_dir, shared_task_root
    from slimserve.build.paths import cache_dir as default_cache_dir
    from slimserve.build.pipeline.bundle import find_python
    from slimserve.build.pipeline.source import resolve_path, resolve_weights

    console = console or Console(stderr=True)
    manifest = example.manifest
    target = manifest.runtime.python
    python = find_python(target)
    import platform

    machine_arch = "arm64" if platform.machine() in ("aarch64", "arm64") else platform.machine()
    if python is None or machine_arch != manifest.runtime.architecture or platform.system() != "Linux":
        return {
            "skipped": (
                f"the zip targets Python {target} {manifest.runtime.architecture} on Linux; this machine has "
                f"{'no Python ' + target if python is None else platform.system() + ' ' + machine_arch}"
            )
        }
    cache = (cache_dir or default_cache_dir()).resolve()
    work = new_work_dir(cache, f"bench-{example.name}")
    try:
        task_root = shared_task_root(cache, example.zip_path, work, console)
        tmp = work / "tmp"
        tmp.mkdir()
        event_file = work / "event.json"
        event_file.write_text(json.dumps(http_api_event("POST", example.infer_path, infer_body(example))), encoding="utf-8")
        threads = handler_threads()
        common = {"BENCH_EVENT": str(event_file), "BENCH_MODEL_NAME": example.name}
        contenders = [
            Contender(
                "floor",
                [python, "-S", "-c", _DRIVER],
                {**_base_env(tmp, [task_root]), **common, "BENCH_MODE": "floor", "BENCH_THREADS": str(threads),
                 "BENCH_ONNX": str(task_root / "model" / manifest.model.file)},
                task_root,
                f"Python {target} -S on the unpacked zip: import onnxruntime + numpy, InferenceSession "
                f"(intra_op={threads}, inter_op=1, ORT_ENABLE_BASIC, no spinning: the handler's options)",
            ),
            Contender(
                "slimserve",
                [python, "-S", "-c", _DRIVER],
                {**_base_env(tmp, [task_root]), **common, "BENCH_MODE": "handler", "BENCH_HANDLER": manifest.runtime.handler},
                task_root,
                f"Python {target} -S on the unpacked zip: import {manifest.runtime.handler}, one infer event",
            ),
        ]
        notes: list[str] = []
        if example.has_torch_source:
            source = example.config.source
            torch_env = {
                **_base_env(tmp, venv_site_packages()),
                **common,
                "BENCH_MODE": "handler",
                "BENCH_HANDLER": "baseline_handler.handler",
                "BENCH_MODEL_PY": str(example.config.path(source.module)),
                "BENCH_FACTORY": source.factory,
                "BENCH_WEIGHTS": str(resolve_weights(example.config)),
            }
            if example.is_text:
                torch_env["BENCH_HANDLER_FILE"] = str(BASELINES / "torch_text_handler.py")
                reference = example.config.task_options.get("tokenizer_source") or example.config.task_options.get("tokenizer", "tokenizer.json")
                torch_env["BENCH_TOKENIZER"] = str(resolve_path(example.config, reference, "task_options.tokenizer_source"))
            else:
                torch_env["BENCH_HANDLER_FILE"] = str(BASELINES / "torch_tensor_handler.py")
            contenders.append(
                Contender(
                    "pytorch_fastapi",
                    [sys.executable, "-S", "-c", _DRIVER],
                    torch_env,
                    tmp,
                    f"Python {sys.version_info[0]}.{sys.version_info[1]} -S with the venv's site-packages: "
                    f"{Path(torch_env['BENCH_HANDLER_FILE']).name} (FastAPI + Mangum + torch, original weights)",
                )
            )
        else:
            notes.append("no PyTorch source: the PyTorch baseline is not measured")
        if include_onnx_fastapi:
            layer, why = fastapi_layer(python, target, manifest.runtime.architecture, console)
            if layer is None:
                notes.append(f"hand-written onnxruntime + FastAPI baseline not measured: {why}")
            else:
                onnx_env = {
                    **_base_env(tmp, [task_root, layer]),
                    **common,
                    "BENCH_MODE": "handler",
                    "BENCH_HANDLER": "baseline_handler.handler",
                    "BENCH_HANDLER_FILE": str(BASELINES / "onnx_fastapi_handler.py"),
                    "BENCH_ONNX": str(task_root / "model" / manifest.model.file),
                }
                if example.is_text:
                    tokenizer = manifest.task_options.get("tokenizer", "tokenizer.json")
                    onnx_env["BENCH_TOKENIZER"] = str(task_root / "model" / tokenizer)
                contenders.append(
                    Contender(
                        "onnx_fastapi",
                        [python, "-S", "-c", _DRIVER],
                        onnx_env,
                        task_root,
                        f"Python {target} -S on the unpacked zip + FastAPI layer (byte-compiled): "
                        "onnx_fastapi_handler.py, onnxruntime default session options",
                    )
                )
        for index in range(warmup + runs):
            timed = index >= warmup
            for contender in contenders:
                status(
                    f"{example.name}: cold start {contender.name}, "
                    + (f"run {index - warmup + 1}/{runs}" if timed else "page-cache warm-up")
                )
                try:
                    sample = _run_once(contender, timeout_s)
                except RuntimeError as exc:
                    contender.errors.append(str(exc))
                    continue
                if timed:
                    contender.samples.append(sample)
        profiles: dict[str, Any] = {}
        for contender in contenders[:2]:  # floor and slimserve: what the handler adds to the floor
            status(f"{example.name}: cold start import profile, {contender.name}")
            profiles[contender.name] = import_profile(contender, timeout_s)
        status(f"{example.name}: cold start, init steps in process")
        try:
            components: dict[str, Any] = init_components(example, threads)
        except Exception as exc:  # noqa: BLE001 - a breakdown detail
            components = {"error": f"{type(exc).__name__}: {exc}"}
        floor_packages = set(profiles["floor"]["all_packages_self_ms"])
        beyond_floor = {
            name: value
            for name, value in profiles["slimserve"]["all_packages_self_ms"].items()
            if name not in floor_packages
        }
        results = {
            contender.name: {
                "description": contender.description,
                **_summary(contender.samples),
                "errors": contender.errors,
            }
            for contender in contenders
        }
        floor = results["floor"].get("median_total_ms")
        slim = results["slimserve"].get("median_total_ms")
        torch_ms = results.get("pytorch_fastapi", {}).get("median_total_ms")
        onnx_ms = results.get("onnx_fastapi", {}).get("median_total_ms")
        return {
            "method": (
                f"{runs} interleaved runs per contender after {warmup} untimed page-cache warm-up run(s); "
                "process spawn to first answer (child perf_counter, CLOCK_MONOTONIC)"
            ),
            "target_python": python,
            "task_root": str(task_root),
            "handler_threads": threads,
            "contenders": results,
            "slimserve_vs_floor_x": ratio(slim, floor),
            "slimserve_vs_pytorch_pct": None if ratio(slim, torch_ms) is None else 100 * ratio(slim, torch_ms),
            "onnx_fastapi_vs_floor_x": ratio(onnx_ms, floor),
            "onnx_fastapi_vs_pytorch_pct": None if ratio(onnx_ms, torch_ms) is None else 100 * ratio(onnx_ms, torch_ms),
            "slimserve_vs_onnx_fastapi_x": ratio(slim, onnx_ms),
            "pytorch_vs_slimserve_x": ratio(torch_ms, slim),
            "import_profile": {
                "floor": profiles["floor"]["top_packages_self_ms"],
                "slimserve": profiles["slimserve"]["top_packages_self_ms"],
                "slimserve_beyond_floor_self_ms": dict(list(beyond_floor.items())[:12]),
                "slimserve_beyond_floor_total_ms": sum(beyond_floor.values()),
                "note": "one run each under python -X importtime; self time by top-level package",
            },
            "init_steps_in_process_ms": {
                **components,
                "note": (
                    "the handler's init steps timed in the suite's own process (Python "
                    f"{sys.version_info[0]}.{sys.version_info[1]}, imports already done): load_model = sha256 + "
                    "session; create_app = task adapter (for text: tokenizer + warm-up batch) + OpenAPI document"
                ),
            },
            "notes": notes,
            "errors": sum(len(contender.errors) for contender in contenders),
        }
    finally:
        close_work_dir(work)
