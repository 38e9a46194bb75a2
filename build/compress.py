"""Optimize and compress an fp32 ONNX model with onnxruntime's own tools.

Each function maps files to files, so each step can be tested and re-run alone:
``optimize`` (quant_pre_process: shape inference + ORT graph optimizations) and ``compress``
(dynamic int8, fp16, or none; static int8 takes a calibration reader).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from build.config import CompressionConfig


def optimize(source: Path, destination: Path, *, skip_symbolic_shape: bool = False) -> Path:
    """Shape inference and onnxruntime's basic graph optimizations (constant folding,
    redundant node removal), saved as a plain ONNX model any later step can read."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    destination.parent.mkdir(parents=True, exist_ok=True)
    quant_pre_process(str(source), str(destination), skip_symbolic_shape=skip_symbolic_shape)
    return destination


def compress(source: Path, destination: Path, config: CompressionConfig, *, calibration: Any = None) -> dict[str, Any]:
    """Write the compressed model; return what was applied (the manifest's ``compression``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    destination.parent.mkdir(parents=True, exist_ok=True)
    applied: dict[str, Any] = {"method": config.method}
    if config.method == "none":
        shutil.copyfile(source, destination)
        return applied
    if config.method == "dynamic-int8":
        weight_type = QuantType.QInt8 if config.weight_type == "int8" else QuantType.QUInt8
        quantize_dynamic(
            str(source),
            str(destination),
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=weight_type,
            nodes_to_exclude=list(config.nodes_to_exclude) or None,
            op_types_to_quantize=config.op_types_to_quantize,
            # Graphs optimized by ORT can lose value_info for some tensors; quantize_dynamic
            # then fails with "Unable to find data type". Telling it the default fixes that.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        applied.update(
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=config.weight_type,
            nodes_to_exclude=list(config.nodes_to_exclude),
        )
        return applied
    if config.method == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        onnx.save(model, str(destination))
        applied.update(keep_io_types=True)
        return applied
    if config.method == "static-int8":
        from onnxruntime.quantization import QuantFormat, quantize_static

        if calibration is None:
            raise ValueError("static-int8 needs calibration data (validation.calibration in slimserve.toml)")
        quantize_static(
            str(source),
            str(destination),
            calibration_data_reader=calibration,
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            nodes_to_exclude=list(config.nodes_to_exclude) or None,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        applied.update(per_channel=config.per_channel, format="QDQ", nodes_to_exclude=list(config.nodes_to_exclude))
        return applied
    raise ValueError(f"unknown compression method {config.method!r}")
