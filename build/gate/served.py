"""Run an ONNX file exactly as the handler serves it: a model folder holding the file and the
manifest the build will ship, ``slimserve.handler.model.load_model`` (the sha256 check, the
session options Lambda uses) and the task adapter. The gate scores these answers, so what it
measures is what is served; a model the handler would refuse fails here, before any zip exists.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.config import BuildConfig
from slimserve.build.errors import ServeCheckFailed
from slimserve.build.gate.portability import serving_options
from slimserve.build.pipeline.bundle import sha256_file
from slimserve.build.pipeline.onnxfile import ServedInterface
from slimserve.handler.datatypes import V2_TO_NUMPY
from slimserve.handler.errors import SlimserveError
from slimserve.handler.manifest import (
    MANIFEST_FILE,
    MANIFEST_SCHEMA,
    Manifest,
    ModelFile,
    OnnxRuntimeOptions,
    Runtime,
)
from slimserve.handler.model import load_model
from slimserve.handler.tasks import TaskAdapter, adapter_for

MODEL_FILE = "model.onnx"


def manifest_for(
    config: BuildConfig, served: ServedInterface, onnxruntime: Mapping[str, Any] | None = None, **fields: Any
) -> Manifest:
    """The manifest of this build (``fields`` adds model, compression, validation, sizes...);
    until a model file is pinned it names a placeholder. ``onnxruntime``: the session options the
    model is served with (``portability.serving_options``; default the handler's)."""
    runtime = config.runtime
    return Manifest(
        schema=MANIFEST_SCHEMA,
        name=config.name,
        version=config.version,
        task=config.task,
        model=fields.pop("model", ModelFile(file=MODEL_FILE, sha256="0" * 64, bytes=0)),
        inputs=served.inputs,
        outputs=served.outputs,
        labels=served.labels,
        task_options=served.task_options,
        runtime=Runtime(
            python=runtime.python, architecture=runtime.architecture, memory_mb=runtime.memory_mb,
            timeout_s=runtime.timeout_s, limits=runtime.limits, **({"onnxruntime": onnxruntime} if onnxruntime else {}),
        ),
        **fields,
    )


def api_inputs(served: ServedInterface, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Held-out arrays as the API decodes them: each in its input's declared datatype."""
    converted = {}
    for spec in served.inputs:
        array = np.asarray(inputs[spec.name])
        converted[spec.name] = array if spec.datatype == "BYTES" else array.astype(V2_TO_NUMPY[spec.datatype], copy=False)
    return converted


def stage_model(model_path: Path, manifest: Manifest, folder: Path) -> Manifest:
    """``folder``/model.onnx (a hard link when possible) + manifest.json pinning it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILE
    target.unlink(missing_ok=True)
    try:
        os.link(model_path, target)
    except OSError:
        shutil.copyfile(model_path, target)
    # Served with the options this very file needs (the s8 -> u8 conversion, see portability).
    runtime = manifest.runtime.model_copy(update={"onnxruntime": OnnxRuntimeOptions.model_validate(serving_options(target))})
    pinned = manifest.model_copy(
        update={"model": ModelFile(file=MODEL_FILE, sha256=sha256_file(target), bytes=target.stat().st_size), "runtime": runtime}
    )
    (folder / MANIFEST_FILE).write_text(pinned.to_json(), encoding="utf-8")
    return pinned


def load_adapter(folder: Path) -> TaskAdapter:
    """The handler's own load path for a model folder; its refusal is a ServeCheckFailed."""
    try:
        return adapter_for(load_model(folder, intra_op_threads=1))
    except SlimserveError as exc:
        raise ServeCheckFailed(f"the handler refuses this model: {exc.message}") from None


class ServedRunner:
    """Answers held-out inputs through the handler, for any number of candidate files."""

    def __init__(self, manifest: Manifest, folder: Path, files: Mapping[str, Path] | None = None) -> None:
        self.manifest = manifest  # the manifest to ship, but for the model file and validation
        self.folder = folder
        self.files = dict(files or {})  # what the handler reads beside the model (a tokenizer)
        self._count = 0

    def adapter(self, model_path: Path) -> TaskAdapter:
        """The handler's adapter over ``model_path`` (its folder is removed once loaded: a hard
        link per candidate of a search would keep every candidate's bytes on disk)."""
        self._count += 1
        folder = self.folder / f"{self._count:02d}-{model_path.stem}"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            stage_model(model_path, self.manifest, folder)
            for name, path in self.files.items():
                shutil.copyfile(path, folder / name)
            return load_adapter(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def answers(self, model_path: Path, inputs: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
        """Every output the API returns for ``inputs``, answered ``batch_size`` rows at a time."""
        adapter = self.adapter(model_path)
        count = len(next(iter(inputs.values())))
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, count, batch_size):
            batch = {name: np.ascontiguousarray(array[start : start + batch_size]) for name, array in inputs.items()}
            try:
                produced = adapter.infer(batch, {})
            except SlimserveError as exc:
                cause = exc.__cause__  # onnxruntime's own words, which the handler keeps from clients
                detail = " ".join(str(cause).split())[:300] if cause is not None else ""
                raise ServeCheckFailed(
                    f"the handler cannot answer held-out rows {start}..{start + len(next(iter(batch.values()))) - 1}: "
                    f"{exc.message}{f' ({detail})' if detail else ''}"
                ) from None
            for name, array in produced.items():
                parts.setdefault(name, []).append(array)
        return {name: np.concatenate(arrays, axis=0) for name, arrays in parts.items()}
