"""Export a PyTorch module to one self-contained ONNX file with dynamic axes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.config import ExportConfig
from slimserve.build.errors import ModelError
from slimserve.handler.datatypes import V2_TO_NUMPY
from slimserve.handler.manifest import TensorSpec


def example_inputs(specs: list[TensorSpec], free_dim: int = 2) -> tuple[Any, ...]:
    """Zeros of each input's shape, free dimensions set to ``free_dim`` (not 1: the tracer
    would specialise a size-1 axis)."""
    import torch

    tensors = []
    for spec in specs:
        shape = [free_dim if dim == -1 else dim for dim in spec.shape]
        array = np.zeros(shape, dtype=V2_TO_NUMPY[spec.datatype])
        tensors.append(torch.from_numpy(array))
    return tuple(tensors)


def dynamic_axes(specs: list[TensorSpec]) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for spec in specs:
        named = {axis: ("batch" if axis == 0 else f"{spec.name}_dim{axis}") for axis, dim in enumerate(spec.shape) if dim == -1}
        if named:
            axes[spec.name] = named
    return axes


def export_onnx(model: Any, config: ExportConfig, destination: Path) -> Path:
    """``torch.onnx.export`` with the declared names and free axes, as one file (the dynamo
    exporter's external data is inlined: the handler verifies and loads exactly one artefact).
    Raises ModelError when the exporter fails."""
    import onnx
    import torch

    assert config.inputs is not None and config.outputs is not None  # the config requires them for PyTorch
    destination.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter is the default on purpose (the dynamo exporter writes external
    # data and may rename outputs; the interface check after export catches the latter);
    # silence its deprecation notice.
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                example_inputs(config.inputs),
                str(destination),
                input_names=[spec.name for spec in config.inputs],
                output_names=[spec.name for spec in config.outputs],
                dynamic_axes=dynamic_axes([*config.inputs, *config.outputs]),
                opset_version=config.opset,
                do_constant_folding=True,
                dynamo=config.dynamo,
            )
        proto = onnx.load(str(destination))  # with its external data, if the exporter wrote any
        onnx.checker.check_model(proto)
    except Exception as exc:  # torch's exporter raises many types; each is one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"export: torch.onnx.export failed: {type(exc).__name__}: {first}") from exc
    data_files = list(destination.parent.glob(destination.name + ".data"))
    if data_files:
        onnx.save(proto, str(destination))
        for path in data_files:
            path.unlink()
    return destination
