"""Optimize and compress an fp32 ONNX model with onnxruntime's own tools.

Each function maps files to files, so each step can be tested and re-run alone:

- ``optimize``: ``quant_pre_process`` (shape inference + ORT graph optimizations);
- ``fuse_transformer``: ``onnxruntime.transformers.optimizer`` fusions (Attention,
  SkipLayerNormalization, Gelu...), so int8 can use the fused quantized kernels;
- ``compress``: none, dynamic int8 (``quantize_dynamic``), static int8 in QDQ format
  (``quantize_static`` with MinMax / Entropy / Percentile calibration), per-token int8 for
  BERT-family encoders (``per_token``), or fp16 (``float16.convert_float_to_float16``, I/O
  kept fp32). Mixed precision: nodes, given by name
  or fnmatch pattern or by op type, stay fp32 in every method.

Nothing here re-implements a quantizer onnxruntime has: it picks onnxruntime's options and
checks the result; ``per_token`` adds the one thing onnxruntime's quantizers lack (activation
scales per token row). Reading a graph (node names, quantizable nodes) is ``graph``; calibration readers are
``calibration``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slimserve.build.compression.calibration import ArrayCalibrationReader, calibration_reader
from slimserve.build.compression.graph import node_table, resolve_nodes
from slimserve.build.config import CompressionConfig
from slimserve.build.errors import CompressionError


def optimize(source: Path, destination: Path, *, skip_symbolic_shape: bool = False) -> Path:
    """Shape inference and onnxruntime's basic graph optimizations (constant folding,
    redundant node removal), saved as a plain ONNX model any later step can read.

    Symbolic shape inference fails on some transformer exports (field notes); then it is
    retried without it, which only loses shape information the quantizer does not need."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    destination.parent.mkdir(parents=True, exist_ok=True)
    source, destination = source.resolve(), destination.resolve()
    # When symbolic shape inference gives up, onnxruntime leaves sym_shape_infer_temp.onnx and a
    # <uuid>.data file in the working directory: run it in a scratch folder that is then removed.
    with tempfile.TemporaryDirectory(prefix="slimserve-optimize-") as scratch, contextlib.chdir(scratch):
        try:
            quant_pre_process(str(source), str(destination), skip_symbolic_shape=skip_symbolic_shape)
        except Exception:
            if skip_symbolic_shape:
                raise
            quant_pre_process(str(source), str(destination), skip_symbolic_shape=True)
    return destination


def fuse_transformer(
    source: Path, destination: Path, model_type: str = "bert", *, num_heads: int = 0, hidden_size: int = 0
) -> dict[str, int]:
    """onnxruntime.transformers.optimizer fusions for CPU; returns the fused op counts.

    Raises CompressionError when nothing was fused (the wrong model type, or not a transformer):
    a requested optimization that silently does nothing would mislead the size/latency table."""
    from onnxruntime.transformers.optimizer import optimize_model

    destination.parent.mkdir(parents=True, exist_ok=True)
    with _quiet("onnxruntime.transformers"):
        model = optimize_model(
            str(source), model_type=model_type, num_heads=num_heads, hidden_size=hidden_size,
            opt_level=0, use_gpu=False,
        )
        fused = {op: count for op, count in model.get_fused_operator_statistics().items() if count}
    if not fused:
        raise CompressionError(
            f"compression.transformer_fusion = {model_type!r} fused nothing in {source.name}; "
            "remove it or choose the model's type"
        )
    model.save_model_to_file(str(destination), use_external_data_format=False)
    return fused


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """onnxruntime's quantizer logs a pre-processing advice per call at WARNING; the build
    already pre-processes, so keep the console to slimserve's own progress."""
    loggers = [logging.getLogger(name) for name in (*names, "root")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _quant_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QInt8 if name == "int8" else QuantType.QUInt8


def compress(
    source: Path,
    destination: Path,
    config: CompressionConfig,
    *,
    calibration: Any = None,
    calibration_cache: Path | None = None,
) -> dict[str, Any]:
    """Write the compressed model; return what was applied (the manifest's ``compression``).

    ``calibration`` (static int8): a CalibrationDataReader, a dict of input arrays, or a
    callable returning a reader. ``calibration_cache``: onnxruntime's calibration-range cache
    file (reused when it exists) so several static candidates calibrate once."""
    import onnx

    destination.parent.mkdir(parents=True, exist_ok=True)
    applied: dict[str, Any] = {"method": config.method}
    if config.method == "none":
        shutil.copyfile(source, destination)
        return applied
    if config.method == "auto":
        raise CompressionError("compression.method = 'auto' is a search: use slimserve.build.compression.auto.run_search")

    with tempfile.TemporaryDirectory(prefix="slimserve-compress-") as scratch:
        if config.transformer_fusion is not None:
            fused_path = Path(scratch) / "fused.onnx"
            fused = fuse_transformer(
                source, fused_path, config.transformer_fusion,
                num_heads=config.fusion_num_heads, hidden_size=config.fusion_hidden_size,
            )
            source = fused_path
        kept = resolve_nodes(source, config.nodes_to_exclude, config.op_types_to_exclude)
        # The dynamic quantizer first rewrites each Gemm "X" as MatMul "X_MatMul" + Add "X_Add"
        # and only then applies nodes_to_exclude: name the MatMul too, or the Gemm is quantized.
        gemms = {name for name, op in node_table(source) if op == "Gemm"}
        quantizer_names = kept + [f"{name}_MatMul" for name in kept if name in gemms]
        extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}

        if config.method == "dynamic-int8":
            from onnxruntime.quantization import quantize_dynamic

            with _quiet("onnxruntime.quantization"):
                quantize_dynamic(
                    str(source),
                    str(destination),
                    per_channel=config.per_channel,
                    reduce_range=config.reduce_range,
                    weight_type=_quant_type(config.weight_type),
                    nodes_to_exclude=quantizer_names or None,
                    op_types_to_quantize=config.op_types_to_quantize,
                    # Graphs optimized by ORT can lose value_info for some tensors; quantize_dynamic
                    # then fails with "Unable to find data type". Telling it the default fixes that.
                    extra_options=extra,
                )
            applied.update(
                per_channel=config.per_channel,
                reduce_range=config.reduce_range,
                weight_type=config.weight_type,
                nodes_to_exclude=list(config.nodes_to_exclude),
            )
        elif config.method == "static-int8":
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

            reader = calibration_reader(calibration, config.calibration_samples)
            if reader is None and not (calibration_cache and calibration_cache.is_file()):
                raise CompressionError(
                    "static-int8 needs calibration data (validation.calibration in slimserve.toml)"
                )
            if config.percentile is not None:
                extra["CalibPercentile"] = config.percentile
            if config.calibrate_method != "MinMax" and isinstance(reader, ArrayCalibrationReader):
                # histogram calibrators stack every sample's activations: keep one padded shape
                reader.trim_padding = False
            with _quiet("onnxruntime.quantization"):
                quantize_static(
                    str(source),
                    str(destination),
                    calibration_data_reader=reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=config.per_channel,
                    reduce_range=config.reduce_range,
                    activation_type=_quant_type(config.activation_type),
                    weight_type=_quant_type(config.weight_type),
                    nodes_to_exclude=kept or None,
                    op_types_to_quantize=config.op_types_to_quantize,
                    calibrate_method=getattr(CalibrationMethod, config.calibrate_method),
                    calibration_cache_path=calibration_cache,
                    extra_options=extra,
                )
            applied.update(
                per_channel=config.per_channel,
                reduce_range=config.reduce_range,
                format="QDQ",
                activation_type=config.activation_type,
                weight_type=config.weight_type,
                calibrate_method=config.calibrate_method,
                nodes_to_exclude=list(config.nodes_to_exclude),
            )
            if config.percentile is not None:
                applied["percentile"] = config.percentile
            if config.calibration_samples is not None:
                applied["calibration_samples"] = config.calibration_samples
        elif config.method == "matmul-nbits":
            applied.update(_matmul_nbits(source, destination, config, kept, quantizer_names, Path(scratch)))
        elif config.method == "per-token-int8":
            applied.update(_per_token_int8(source, destination, config, kept, quantizer_names, Path(scratch)))
        elif config.method == "fp16":
            from onnxruntime.transformers.float16 import (
                DEFAULT_OP_BLOCK_LIST,
                convert_float_to_float16,
            )

            with _quiet("onnxruntime.transformers"):
                model = convert_float_to_float16(
                    onnx.load(str(source)),
                    keep_io_types=True,
                    op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(config.op_types_to_exclude)),
                    node_block_list=kept or None,
                )
            onnx.save(model, str(destination))
            applied.update(keep_io_types=True)
            if config.nodes_to_exclude:
                applied["nodes_to_exclude"] = list(config.nodes_to_exclude)
        else:  # pragma: no cover - the config's Literal rules this out
            raise CompressionError(f"unknown compression method {config.method!r}")

    if config.op_types_to_exclude:
        applied["op_types_to_exclude"] = list(config.op_types_to_exclude)
    if config.op_types_to_quantize is not None and config.method != "fp16":
        applied["op_types_to_quantize"] = list(config.op_types_to_quantize)
    if kept != list(config.nodes_to_exclude):
        applied["nodes_kept_fp32"] = kept
    if config.transformer_fusion is not None:
        applied["transformer_fusion"] = config.transformer_fusion
        applied["fused_ops"] = fused
    return applied


def _per_token_int8(
    source: Path, destination: Path, config: CompressionConfig, kept: list[str], quantizer_names: list[str], scratch: Path
) -> dict[str, Any]:
    """Per-token int8 for the encoder's outlier-carrying MatMuls and per-row u8 embeddings
    (per_token.py), then ``quantize_dynamic`` with the same weight settings for the remaining
    weighted MatMuls (e.g. the attention output projection)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from slimserve.build.compression import per_token

    rewritten = scratch / "per_token.onnx"
    counts = per_token.rewrite(
        source, rewritten, per_channel=config.per_channel, reduce_range=config.reduce_range, excluded=kept
    )
    with _quiet("onnxruntime.quantization"):
        quantize_dynamic(
            str(rewritten), str(destination),
            per_channel=config.per_channel, reduce_range=config.reduce_range, weight_type=QuantType.QInt8,
            # MatMul only: the embeddings are already u8 (their scale tables are float Gathers).
            op_types_to_quantize=["MatMul"], nodes_to_exclude=quantizer_names or None,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return {
        "per_channel": config.per_channel,
        "reduce_range": config.reduce_range,
        "weight_type": "int8",
        "activations": "u8, one asymmetric scale per token row (in the graph)",
        **counts,
        "nodes_to_exclude": list(config.nodes_to_exclude),
    }


def _matmul_nbits(
    source: Path, destination: Path, config: CompressionConfig, kept: list[str], quantizer_names: list[str], scratch: Path
) -> dict[str, Any]:
    """MatMul weights -> MatMulNBits (blockwise, ``bits``); then the remaining weighted ops
    (embeddings' Gather, Gemm, Conv, fused Attention) -> dynamic int8 as configured."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(source))
    with _quiet("onnxruntime.quantization", "onnxruntime.quantization.matmul_nbits_quantizer"):
        quantizer = MatMulNBitsQuantizer(
            model,
            bits=config.bits,
            block_size=config.block_size,
            accuracy_level=config.accuracy_level,
            nodes_to_exclude=kept,
            op_types_to_quantize=("MatMul",),
        )
        quantizer.process()
    blockwise = sum(1 for node in quantizer.model.model.graph.node if node.op_type == "MatMulNBits")
    if blockwise == 0:
        raise CompressionError(
            f"compression.method = 'matmul-nbits' found no MatMul with constant weights in {source.name}; "
            "use dynamic-int8 or static-int8 for this model"
        )
    intermediate = scratch / "nbits.onnx"
    quantizer.model.save_model_to_file(str(intermediate), False)
    present = {node.op_type for node in quantizer.model.model.graph.node}
    rest = sorted(present & {"Gather", "Gemm", "Conv", "Attention", "EmbedLayerNormalization"})
    if rest:
        with _quiet("onnxruntime.quantization"):
            quantize_dynamic(
                str(intermediate), str(destination),
                per_channel=config.per_channel, reduce_range=config.reduce_range,
                weight_type=_quant_type(config.weight_type), op_types_to_quantize=rest,
                nodes_to_exclude=quantizer_names or None,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    else:
        shutil.copyfile(intermediate, destination)
    return {
        "bits": config.bits,
        "block_size": config.block_size,
        "accuracy_level": config.accuracy_level,
        "blockwise_matmuls": blockwise,
        "other_ops_int8": rest,
        "nodes_to_exclude": list(config.nodes_to_exclude),
    }
