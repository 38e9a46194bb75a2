"""Section 3, cold start: process start to the first successful infer response, in a fresh
interpreter, for slimserve's handler and for what it is compared with, interleaved.

Contenders (each run spawns a new process; runs go floor, slimserve, baselines, floor, ...):

- ``floor``: the zip's target Python (``-S``: no site-packages) on the unpacked lambda.zip that
  only imports onnxruntime and numpy and opens the InferenceSession on ``model/model.onnx``
  with the handler's thread counts and session options (the manifest's ``runtime.onnxruntime``
  included). Nothing can serve faster than this. When those options are not the handler's
  defaults (e.g. level extended for ``session.x64quantprecision``), ``floor_default_options``
  opens the same model at the defaults: what the model's options cost at cold start.
- ``slimserve``: same interpreter, same folder: imports ``slimserve.handler.main`` (the Lambda handler
  string in the manifest) and calls ``handler(event, context)`` with an HTTP API event
  carrying the infer request; done when it returns status 200.
- ``pytorch_fastapi``: what a user would write without slimserve (build/bench/baselines/):
  FastAPI + Mangum serving the original PyTorch model; the project venv's Python (it needs
  torch). For ``source.module``: the module and its weights, ``-S`` with only the venv's
  site-packages on the path. For ``source.huggingface``: the folder loaded offline exactly as the
  build loaded it (``huggingface_torch.load_model``: transformers / sentence-transformers,
  ``local_files_only``), with the venv's ``site`` (its .pth files make an editable slimserve
  importable).
- ``onnx_fastapi``: a minimal hand-written FastAPI + Mangum + onnxruntime handler on the same
  shipped model, target Python, the unpacked zip plus a FastAPI layer installed for the target
  Python and byte-compiled by it (skipped when that layer cannot be installed).

Each run spawns a fresh interpreter (build/bench/spawn.py: the driver, one timed run, the
import profile). One untimed run of each contender first warms the page cache: these are warm-cache
cold starts (what a re-used Lambda host sees; a first-ever start from a cold disk is slower).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from slimserve.build.bench.common import Example, http_api_event, infer_body
from slimserve.build.bench.spawn import (
    DRIVER,
    Contender,
    base_env,
    import_profile,
    run_once,
    venv_site_packages,
)
from slimserve.build.bench.stats import ratio

BASELINES = Path(__file__).resolve().parent / "baselines"


def handler_threads() -> int:
    """The handler's default intra-op thread count on this machine (handler/settings.py)."""
    from slimserve.handler.settings import Settings

    return Settings.from_env(model_dir=Path("model"), environ={}).intra_op_threads


def fastapi_layer(
    python: str, target_version: str, architecture: str, cache: Path, console: Console
) -> tuple[Path | None, str]:
    """FastAPI (+ starlette, anyio...) installed for the target Python and byte-compiled by it,
    under ``<cache>/bench``: what the hand-written onnxruntime + FastAPI handler adds to the zip."""
    from importlib.metadata import version

    from slimserve.build.errors import BundleError
    from slimserve.build.pipeline.bundle import install_dependencies

    try:
        requirement = f"fastapi=={version('fastapi')}"
    except Exception:  # noqa: BLE001 - no FastAPI here: nothing to compare with
        return None, "FastAPI is not installed in the build environment"
    try:
        layer = install_dependencies(
            [requirement], python=target_version, architecture=architecture, cache=cache / "bench"
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


@dataclass(frozen=True)
class _Setting:
    """What the contenders of one example share."""

    example: Example
    python: str  # the zip's target Python
    task_root: Path  # the unpacked lambda.zip
    tmp: Path  # the children's HOME and TMPDIR
    event_env: dict[str, str]  # BENCH_EVENT (a file holding the infer event), BENCH_MODEL_NAME
    threads: int  # the handler's intra-op threads

    @property
    def target(self) -> str:
        return self.example.manifest.runtime.python

    @property
    def onnx(self) -> Path:
        return self.task_root / "model" / self.example.manifest.model.file

    def baseline_env(self, python_path: list[Path], handler_file: str) -> dict[str, str]:
        """The environment of a baseline handler (build/bench/baselines/<handler_file>)."""
        return {
            **base_env(self.tmp, python_path),
            **self.event_env,
            "BENCH_MODE": "handler",
            "BENCH_HANDLER": "baseline_handler.handler",
            "BENCH_HANDLER_FILE": str(BASELINES / handler_file),
        }


def _zip_contenders(setting: _Setting) -> list[Contender]:
    """The floor and slimserve's handler, both on the unpacked zip with its target Python; when
    the model is served with more than the handler's default options (manifest
    ``runtime.onnxruntime``), also the floor at the defaults: what those options cost."""
    handler = setting.example.manifest.runtime.handler
    serving = setting.example.manifest.runtime.onnxruntime.model_dump()
    default = type(setting.example.manifest.runtime.onnxruntime)().model_dump()

    def floor(name: str, options: dict[str, Any]) -> Contender:
        config = ", ".join(
            [f"{key}={value}" for key, value in options["config"].items()]
            + [f"{key}={value} without VNNI" for key, value in options.get("config_without_vnni", {}).items()]
        )
        return Contender(
            name,
            [setting.python, "-S", "-c", DRIVER],
            {**base_env(setting.tmp, [setting.task_root]), **setting.event_env, "BENCH_MODE": "floor",
             "BENCH_THREADS": str(setting.threads), "BENCH_ONNX": str(setting.onnx), "BENCH_ORT_OPTIONS": json.dumps(options)},
            setting.task_root,
            f"Python {setting.target} -S on the unpacked zip: import onnxruntime + numpy, InferenceSession "
            f"(intra_op={setting.threads}, inter_op=1, level {options['graph_optimization_level']}, no spinning"
            + (f", {config}" if config else "")
            + ("): the handler's options" if options == serving else "): the handler's default options"),
        )

    contenders = [
        floor("floor", serving),
        Contender(
            "slimserve",
            [setting.python, "-S", "-c", DRIVER],
            {**base_env(setting.tmp, [setting.task_root]), **setting.event_env, "BENCH_MODE": "handler", "BENCH_HANDLER": handler},
            setting.task_root,
            f"Python {setting.target} -S on the unpacked zip: import {handler}, one infer event",
        ),
    ]
    if serving != default:
        contenders.append(floor("floor_default_options", default))
    return contenders


def _pytorch_contender(setting: _Setting) -> Contender | str:
    """FastAPI + Mangum serving the original PyTorch model, or why it is not measured."""
    from slimserve.build.pipeline.source import resolve_path, resolve_weights

    example = setting.example
    if not example.has_torch_source:
        return "no PyTorch source (source.onnx): the PyTorch baseline is not measured"
    config = example.config
    source = config.source
    python = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
    tokenizer = None
    if example.is_text or source.huggingface is not None:
        reference = config.task_options.get("tokenizer_source") or config.task_options.get("tokenizer", "tokenizer.json")
        tokenizer = str(resolve_path(config, reference, "task_options.tokenizer_source"))
    if source.huggingface is not None:
        assert tokenizer is not None
        handler_file = "torch_huggingface_handler.py"
        env = {
            **setting.baseline_env([], handler_file),
            "BENCH_EXAMPLE": str(example.folder),
            "BENCH_TOKENIZER": tokenizer,
            "BENCH_MAX_TOKENS": str(min(config.task_options.get("max_tokens") or 512, config.runtime.limits.max_tokens)),
            "BENCH_PAD_TOKEN": str(config.task_options.get("pad_token") or "[PAD]"),
        }
        # With site: an editable slimserve is importable only through its .pth finder.
        command = [sys.executable, "-c", DRIVER]
        description = (
            f"{python} with the venv's site: {handler_file} (FastAPI + Mangum + torch; {source.huggingface} "
            "loaded offline by huggingface_torch.load_model, as the build loaded it)"
        )
    else:
        handler_file = "torch_text_handler.py" if example.is_text else "torch_tensor_handler.py"
        assert source.module is not None
        env = {
            **setting.baseline_env(venv_site_packages(), handler_file),
            "BENCH_MODEL_PY": str(config.path(source.module)),
            "BENCH_FACTORY": source.factory,
            "BENCH_WEIGHTS": str(resolve_weights(config)),
        }
        if tokenizer is not None:
            env["BENCH_TOKENIZER"] = tokenizer
        command = [sys.executable, "-S", "-c", DRIVER]
        description = (
            f"{python} -S with the venv's site-packages: {handler_file} (FastAPI + Mangum + torch, original weights)"
        )
    return Contender("pytorch_fastapi", command, env, setting.tmp, description)


def _onnx_fastapi_contender(setting: _Setting, cache: Path, console: Console) -> Contender | str:
    """The hand-written onnxruntime + FastAPI + Mangum handler on the shipped model, or why not."""
    manifest = setting.example.manifest
    layer, why = fastapi_layer(setting.python, setting.target, manifest.runtime.architecture, cache, console)
    if layer is None:
        return f"hand-written onnxruntime + FastAPI baseline not measured: {why}"
    onnx_env = {**setting.baseline_env([setting.task_root, layer], "onnx_fastapi_handler.py"), "BENCH_ONNX": str(setting.onnx)}
    if setting.example.is_text:
        tokenizer = manifest.task_options.get("tokenizer", "tokenizer.json")
        onnx_env["BENCH_TOKENIZER"] = str(setting.task_root / "model" / tokenizer)
    return Contender(
        "onnx_fastapi",
        [setting.python, "-S", "-c", DRIVER],
        onnx_env,
        setting.task_root,
        f"Python {setting.target} -S on the unpacked zip + FastAPI layer (byte-compiled): "
        "onnx_fastapi_handler.py, onnxruntime default session options",
    )


def _time_interleaved(
    name: str, contenders: list[Contender], runs: int, warmup: int, timeout_s: float, status: Callable[[str], None]
) -> None:
    """Runs go floor, slimserve, baselines, floor, ...; the first ``warmup`` rounds are untimed."""
    for index in range(warmup + runs):
        timed = index >= warmup
        for contender in contenders:
            status(
                f"{name}: cold start {contender.name}, "
                + (f"run {index - warmup + 1}/{runs}" if timed else "page-cache warm-up")
            )
            try:
                sample = run_once(contender, timeout_s)
            except RuntimeError as exc:
                contender.errors.append(str(exc))
                continue
            if timed:
                contender.samples.append(sample)


def _import_profiles(profiles: dict[str, Any]) -> dict[str, Any]:
    """Floor and slimserve under -X importtime: the packages the handler adds to the floor."""
    floor_packages = set(profiles["floor"]["all_packages_self_ms"])
    beyond_floor = {
        name: value
        for name, value in profiles["slimserve"]["all_packages_self_ms"].items()
        if name not in floor_packages
    }
    return {
        "floor": profiles["floor"]["top_packages_self_ms"],
        "slimserve": profiles["slimserve"]["top_packages_self_ms"],
        "slimserve_beyond_floor_self_ms": dict(list(beyond_floor.items())[:12]),
        "slimserve_beyond_floor_total_ms": sum(beyond_floor.values()),
        "note": "one run each under python -X importtime; self time by top-level package",
    }


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

    console = console or Console(stderr=True)
    manifest = example.manifest
    target = manifest.runtime.python
    python = find_python(target)
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
        setting = _Setting(example, python, task_root, tmp, {"BENCH_EVENT": str(event_file), "BENCH_MODEL_NAME": example.name}, threads)
        contenders = _zip_contenders(setting)
        baselines = [_pytorch_contender(setting)]
        if include_onnx_fastapi:
            baselines.append(_onnx_fastapi_contender(setting, cache, console))
        contenders += [baseline for baseline in baselines if isinstance(baseline, Contender)]
        notes = [baseline for baseline in baselines if isinstance(baseline, str)]
        _time_interleaved(example.name, contenders, runs, warmup, timeout_s, status)
        profiles: dict[str, Any] = {}
        for contender in contenders[:2]:  # floor and slimserve: what the handler adds to the floor
            status(f"{example.name}: cold start import profile, {contender.name}")
            profiles[contender.name] = import_profile(contender, timeout_s)
        status(f"{example.name}: cold start, init steps in process")
        try:
            components: dict[str, Any] = init_components(example, threads)
        except Exception as exc:  # noqa: BLE001 - a breakdown detail
            components = {"error": f"{type(exc).__name__}: {exc}"}
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
            "floor_vs_default_options_x": ratio(floor, results.get("floor_default_options", {}).get("median_total_ms")),
            "slimserve_vs_pytorch_pct": None if ratio(slim, torch_ms) is None else 100 * ratio(slim, torch_ms),
            "onnx_fastapi_vs_floor_x": ratio(onnx_ms, floor),
            "onnx_fastapi_vs_pytorch_pct": None if ratio(onnx_ms, torch_ms) is None else 100 * ratio(onnx_ms, torch_ms),
            "slimserve_vs_onnx_fastapi_x": ratio(slim, onnx_ms),
            "pytorch_vs_slimserve_x": ratio(torch_ms, slim),
            "import_profile": _import_profiles(profiles),
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
