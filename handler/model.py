"""Load the shipped model once and run it.

Loading happens at import of slimserve.handler.main, i.e. in Lambda's init phase: the manifest is read,
the model file is checked against the sha256 the build pinned, and one InferenceSession is
created with explicit thread counts. Anything wrong is a ModelLoadError with a clear message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import onnxruntime as ort

from slimserve.handler.errors import InferenceError, ModelLoadError
from slimserve.handler.manifest_file import MANIFEST_FILE, ManifestError, load_manifest_view

if TYPE_CHECKING:
    # The handler serves from a ManifestView of the validated JSON: the schema's field names,
    # without importing pydantic (handler/manifest_file.py).
    from slimserve.handler.manifest import Manifest, TensorSpec
    from slimserve.handler.settings import Settings


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


# onnxruntime's graph optimization levels by the manifest's names (runtime.onnxruntime).
OPTIMIZATION_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# The session config entry that makes onnxruntime convert full-range s8 weights to u8 (and use
# its exact u8 x u8 kernels) on x86-64 CPUs, where u8 x s8 kernels without VNNI can saturate
# (build/gate/portability.py). onnxruntime applies it on VNNI CPUs too, where it only costs
# speed (MiniLM: 1.5x the time at 1 x 16 tokens), so a manifest asks for it in
# ``config_without_vnni``: set only where the CPU lacks VNNI.
X64_QUANT_PRECISION = "session.x64quantprecision"


def int8_kernels_can_saturate() -> bool:
    """Whether onnxruntime's u8 x s8 kernels can saturate here: an x86-64 CPU without
    AVX512-VNNI (AMX CPUs have it too). Read from numpy's own CPUID-based detection, which an
    emulator's CPU fools no more than onnxruntime's; unknown counts as "can" (the exact kernels)."""
    import os

    if os.uname().machine not in ("x86_64", "AMD64"):
        return False
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy moved its CPU table: take the exact (slower) kernels
        return True
    return not features.get("AVX512VNNI", False)


def session_options(intra_op_threads: int, serving: Mapping[str, Any] | None = None) -> ort.SessionOptions:
    """The handler's session options; ``serving`` is the manifest's ``runtime.onnxruntime``
    (graph_optimization_level, config entries, and config entries for CPUs without VNNI). The
    build's gate opens its sessions with this same function and the same ``serving``, so what
    was proven is what runs."""
    serving = serving or {}
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The build already optimized the graph offline; basic fusions are cheap and keep session
    # creation (cold start) short. A model that needs a level-2 transformer (the s8 -> u8 weight
    # conversion above) says so in its manifest.
    options.graph_optimization_level = OPTIMIZATION_LEVELS[serving.get("graph_optimization_level", "basic")]
    # Lambda has no persistent cores to spin on; spinning burns the billed CPU for nothing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    config = dict(serving.get("config") or {})
    if serving.get("config_without_vnni") and int8_kernels_can_saturate():
        config.update(serving["config_without_vnni"])
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return options


class LoadedModel(NamedTuple):  # a NamedTuple: cheap to define at cold start (messages.py)
    manifest: Manifest
    session: ort.InferenceSession
    model_path: Path
    model_dir: Path  # the manifest's folder: tokenizer.json, openapi.json (the .onnx may be in /tmp)
    output_names: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.manifest.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.manifest.outputs

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        names = output_names or list(self.output_names)
        try:
            results = self.session.run(names, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InferenceError(f"model execution failed: {type(exc).__name__}") from exc
        return dict(zip(names, results))


def fetch_from_s3(settings: "Settings") -> Path | None:
    """With the S3 model store configured, download the model to /tmp (the only writable place
    on Lambda) and verify it against the pinned sha256; None when the model is in the zip."""
    if settings.model_s3 is None:
        return None
    import tempfile  # with shutil and random behind it: ~10 ms a zip-packaged model never needs

    from slimserve.handler.s3_model import S3ModelError, fetch_model

    store = settings.model_s3
    destination = Path(tempfile.gettempdir()) / "slimserve" / Path(store.key).name
    try:
        return fetch_model(store.bucket, store.key, store.sha256, destination, version_id=store.version_id)
    except S3ModelError as exc:
        raise ModelLoadError(str(exc)) from exc


def load_model(model_dir: Path, *, intra_op_threads: int, model_path: Path | None = None) -> LoadedModel:
    """Read ``model_dir/manifest.json``, verify the model's sha256 and open one session.

    ``model_path`` overrides where the model file is (e.g. downloaded to /tmp from S3); it is
    verified against the same pinned hash.
    """
    try:
        manifest = load_manifest_view(model_dir / MANIFEST_FILE)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from exc
    for name, pinned in manifest.files.items():
        extra = model_dir / name
        if not extra.is_file():
            raise ModelLoadError(f"{name} is missing from {model_dir}; the manifest pins it")
        if sha256_of(extra) != pinned:
            raise ModelLoadError(f"{extra} does not match the sha256 the manifest pins; rebuild the bundle")
    path = model_path or model_dir / manifest.model.file
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    actual = sha256_of(path)
    if actual != manifest.model.sha256:
        raise ModelLoadError(
            f"model file {path} does not match the manifest: sha256 {actual} != pinned "
            f"{manifest.model.sha256}; the file is corrupted or was replaced, rebuild the bundle"
        )
    try:
        session = ort.InferenceSession(
            str(path),
            sess_options=session_options(intra_op_threads, manifest.runtime.get("onnxruntime")),
            providers=["CPUExecutionProvider"],
        )
    except Exception as exc:
        raise ModelLoadError(f"onnxruntime cannot load {path}: {exc}") from exc
    return LoadedModel(
        manifest=manifest,
        session=session,
        model_path=path,
        model_dir=model_dir,
        output_names=tuple(node.name for node in session.get_outputs()),
    )
