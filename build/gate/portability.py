"""Does the gate's verdict hold on the host that serves? The instruction sets the gate ran under,
and whether the shipped model's integer arithmetic is the same on every host of its architecture.

onnxruntime's x86-64 int8 kernels multiply u8 activations by s8 weights. With AVX2 or AVX512
but no VNNI they use VPMADDUBSW, which adds two u8 x s8 products into a 16-bit integer and
clamps (saturates) what does not fit; VNNI and AMX accumulate in 32 bits and never clamp
(onnxruntime's quantization documentation: "When and why do I need to try U8U8?"). Lambda's
x86_64 fleet has both kinds of CPU, so a gate run on one kind is proof for the other only when
no clamp can happen. That is decided here from the model itself, not from its settings:

- a pair of u8 activations (at most 255) times two s8 weights stays within int16 when every
  weight is within [-64, 64]: 255 x (64 + 64) = 32,640 <= 32,767. That is what
  ``reduce_range`` produces (7-bit weights); u8 weights (U8U8) take a kernel without the clamp;
- MatMulNBits computes in int8 only at accuracy_level 4; its weights then have ``bits`` bits,
  safe by the same arithmetic up to 6 bits; 8-bit blocks are not shown safe;
- an integer weight that is not a constant of the model cannot be checked, so it counts as
  one that may clamp;
- full-range s8 weights (beyond +-64) are safe when the session converts them: with the session
  config entry ``session.x64quantprecision = "1"`` at graph optimization level extended or all,
  onnxruntime's ``Avx2WeightS8ToU8Transformer`` rewrites the constant s8 weights of QAttention,
  MatMulIntegerToFloat, DynamicQuantizeMatMul, QGemm, DynamicQuantizeLSTM and (ONNX domain, as
  of opset 10) MatMulInteger, QLinearMatMul and QLinearConv to u8 (zero point 128), so they take
  the exact U8U8 kernels. It does so wherever ``MlasPlatformU8S8Overflow()`` holds, i.e. the
  U8U8 and U8S8 dispatch tables differ: every x86-64 CPU, VNNI ones included, where u8 x s8 is
  exact already and u8 x u8 slower (MiniLM on this project's AVX512-VNNI host: 1.5x the time
  at 1 x 16 tokens). So the option is set only where the CPU lacks VNNI (handler/model.py
  ``int8_kernels_can_saturate``), at level extended on every host (the same float graph).
  Either way every integer product is exact: the same integers on every x86-64 host.
  Sources (onnxruntime 1.32):
  ``include/onnxruntime/core/session/onnxruntime_session_options_config_keys.h``
  (kOrtSessionOptionsAvx2PrecisionMode), ``onnxruntime/core/mlas/lib/platform.cpp``
  (MlasPlatformU8S8Overflow),
  ``onnxruntime/core/optimizer/qdq_transformer/avx2_weight_s8_to_u8.cc`` (the op table) and
  ``onnxruntime/core/optimizer/graph_transformer_utils.cc`` (registered among the level-2
  transformers: at ORT_ENABLE_BASIC it silently does nothing). Verified bit for bit:
  tests/build/gate/test_portability_qemu.py runs such models natively (AVX512-VNNI, no option)
  and under ``qemu-x86_64 -cpu Haswell`` (AVX2, converted) and gets the same outputs.
  ``serving_options`` turns that on exactly for the models that need it, and the manifest
  carries it to the handler (``runtime.onnxruntime``).

arm64's int8 kernels (dot-product instructions, or 16-bit products widened before they are
summed) do not clamp. Float arithmetic (fp32 and fp16 models, and the float parts of int8 ones)
may still differ in the last bits between kernels; the gate's bootstrap margin covers that.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from slimserve.build.machine import cpu_info, describe_int8_flags, has_int8_dot_product
from slimserve.handler.model import X64_QUANT_PRECISION

# Largest |weight| for which two u8 x s8 products cannot leave int16 (see above).
SAFE_S8_WEIGHT = 64
_U8_MAX = 255
_INT16_MAX = 32_767

# Integer matrix products and the input index of their constant weight.
_WEIGHT_INPUT = {
    "MatMulInteger": 1,
    "ConvInteger": 1,
    "QLinearMatMul": 3,
    "QLinearConv": 3,
    "DynamicQuantizeMatMul": 1,
    "MatMulIntegerToFloat": 1,
    "QAttention": 1,
    "QGemm": 3,
    "DynamicQuantizeLSTM": 1,
}
# The ops whose constant s8 weights Avx2WeightS8ToU8Transformer converts to u8 (see above): op type
# -> (domain, the operator versions it matches, the weight inputs).
_CONVERTED = {
    "QAttention": ("com.microsoft", (1,), (1,)),
    "MatMulIntegerToFloat": ("com.microsoft", (1,), (1,)),
    "DynamicQuantizeMatMul": ("com.microsoft", (1,), (1,)),
    "QGemm": ("com.microsoft", (1,), (3,)),
    "DynamicQuantizeLSTM": ("com.microsoft", (1,), (1, 2)),
    "MatMulInteger": ("", (10,), (1,)),
    "QLinearMatMul": ("", (10,), (3,)),
    "QLinearConv": ("", (10,), (3,)),
}
# What a model that needs the conversion is served with (handler/model.py session_options): level
# extended everywhere (the same float graph on every host), the conversion where VNNI is missing
# (onnxruntime would convert on VNNI CPUs too, where u8 x s8 is exact already and u8 x u8 slower).
PRECISE_INT8_SERVING: dict[str, Any] = {
    "graph_optimization_level": "extended", "config": {}, "config_without_vnni": {X64_QUANT_PRECISION: "1"},
}
# Everything else: the handler's defaults (what manifests without runtime.onnxruntime get).
DEFAULT_SERVING: dict[str, Any] = {"graph_optimization_level": "basic", "config": {}, "config_without_vnni": {}}

# Float ops that onnxruntime fuses with DequantizeLinear(int8 weight) into an integer kernel (QDQ).
_QDQ_CONSUMERS = {"MatMul", "Gemm", "Conv", "Attention", "ConvTranspose"}


@dataclass(frozen=True)
class Portability:
    """The verdict's reach: ``saturation_free`` True (same integers on every host of the
    architecture), or False with the nodes that may clamp (first few) and why."""

    architecture: str
    saturation_free: bool
    reason: str
    risky_nodes: tuple[str, ...] = ()

    def holds_only_here(self) -> bool:
        return not self.saturation_free

    def to_dict(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "saturation_free": self.saturation_free,
            "reason": self.reason,
            "risky_nodes": list(self.risky_nodes),
        }


def gate_machine() -> dict[str, Any]:
    """The host the gate ran on, as far as int8 results are concerned (build/machine.py)."""
    info = cpu_info()
    return {
        "cpu": info["model"],
        "machine": info["machine"],
        "int8_flags": info["int8_flags"],
        "int8_dot_product": has_int8_dot_product(info["int8_flags"]),
    }


def _onnx_versions(model: Any) -> dict[str, int]:
    return {("" if entry.domain == "ai.onnx" else entry.domain): entry.version for entry in model.opset_import}


def _converted(node: Any, opsets: dict[str, int]) -> bool:
    """Whether Avx2WeightS8ToU8Transformer matches this node (op type, domain, operator version)."""
    import onnx

    entry = _CONVERTED.get(node.op_type)
    if entry is None or (node.domain or "") != entry[0]:
        return False
    if entry[0]:
        return True  # the contrib ops it lists have only version 1
    try:
        since = onnx.defs.get_schema(node.op_type, opsets.get("", 1), "").since_version
    except onnx.defs.SchemaError:
        return False
    return since in entry[1]


def _integer_products(model: Any) -> Iterator[tuple[str, tuple[str, ...], bool, str | None]]:
    """Every integer matrix product: (label, its integer weight inputs, whether the s8 -> u8
    conversion covers them, a reason it may clamp whatever its weights)."""
    import onnx
    from onnx import TensorProto

    graph = model.graph
    opsets = _onnx_versions(model)
    constants = _constants(graph)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in graph.node:
        label = node.name or node.op_type
        if node.op_type in _WEIGHT_INPUT and len(node.input) > _WEIGHT_INPUT[node.op_type]:
            converted = _converted(node, opsets)
            indexes = _CONVERTED[node.op_type][2] if converted else (_WEIGHT_INPUT[node.op_type],)
            yield label, tuple(node.input[i] for i in indexes if i < len(node.input) and node.input[i]), converted, None
        elif node.op_type == "DequantizeLinear" and any(user.op_type in _QDQ_CONSUMERS for user in consumers.get(node.output[0], [])):
            tensor = constants.get(node.input[0])
            if tensor is not None and tensor.data_type in (TensorProto.INT8, TensorProto.UINT8):
                yield label, (node.input[0],), False, None
        elif node.op_type == "MatMulNBits":
            attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
            if int(attributes.get("accuracy_level", 0)) == 4:
                bits = int(attributes.get("bits", 4))
                why = None
                if _U8_MAX * 2 * (2**bits - 1) > _INT16_MAX:
                    why = f"MatMulNBits with {bits}-bit blocks computed in int8 (accuracy_level 4)"
                yield label, (), False, why


def _constants(graph: Any) -> dict[str, Any]:
    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    return constants


def _largest_s8(tensor: Any) -> int | None:
    """The largest |weight| of an s8 tensor; None for any other type (no u8 x s8 kernel)."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_type != TensorProto.INT8:
        return None
    values = numpy_helper.to_array(tensor)
    return int(abs(values.astype("int16")).max()) if values.size else 0


def _load(model_path: Path) -> Any:
    import onnx

    return onnx.load(str(model_path), load_external_data=False)


def precise_int8(serving: Mapping[str, Any]) -> bool:
    """Whether these session options make onnxruntime convert full-range s8 weights (above)."""
    level = serving.get("graph_optimization_level", "basic")
    converting = [serving.get("config") or {}, serving.get("config_without_vnni") or {}]
    return level in ("extended", "all") and any(config.get(X64_QUANT_PRECISION) == "1" for config in converting)


def serving_options(model_path: Path) -> dict[str, Any]:
    """The onnxruntime options ``model_path`` is to be served with (the manifest's
    ``runtime.onnxruntime``; the gate's sessions use the same): the s8 -> u8 conversion at level
    extended when some product the conversion covers has s8 weights beyond +-64, else the
    handler's defaults (level basic, the cheaper session creation)."""
    stat = model_path.stat()
    return _serving_options(str(model_path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _serving_options(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    # The gate opens several sessions per candidate; the file's identity keys the cache.
    model = _load(Path(path))
    constants = _constants(model.graph)
    for _, weights, converted, _ in _integer_products(model):
        if converted and any((_largest_s8(constants[w]) or 0) > SAFE_S8_WEIGHT for w in weights if w in constants):
            return copy.deepcopy(PRECISE_INT8_SERVING)
    return copy.deepcopy(DEFAULT_SERVING)


def integer_portability(model_path: Path, architecture: str, serving: Mapping[str, Any] | None = None) -> Portability:
    """Whether ``model_path``, opened with the session options ``serving`` (default: its
    ``serving_options``), gives the same integer results on every ``architecture`` host."""
    if architecture != "x86_64":
        return Portability(architecture, True, f"{architecture}: onnxruntime's int8 kernels accumulate without clamping")
    precise = precise_int8(serving if serving is not None else serving_options(model_path))
    model = _load(model_path)
    constants = _constants(model.graph)

    def clamps(weight: str, converted: bool) -> str | None:
        """Why this weight may clamp, or None when it cannot."""
        tensor = constants.get(weight)
        if tensor is None:
            return "its weight is not a constant"
        largest = _largest_s8(tensor)
        if largest is None or largest <= SAFE_S8_WEIGHT or (converted and precise):
            return None
        return f"s8 weights up to {largest} (safe: {SAFE_S8_WEIGHT})"

    risky: list[tuple[str, str]] = []
    integer_ops = converted_ops = 0
    for label, weights, converted, why in _integer_products(model):
        integer_ops += 1
        reasons = [why] if why else [reason for reason in (clamps(weight, converted) for weight in weights) if reason]
        if reasons:
            risky.append((label, reasons[0]))
        elif converted and precise and any((_largest_s8(constants[w]) or 0) > SAFE_S8_WEIGHT for w in weights if w in constants):
            converted_ops += 1
    if risky:
        first = "; ".join(f"{name}: {why}" for name, why in risky[:3])
        more = f" (and {len(risky) - 3} more)" if len(risky) > 3 else ""
        return Portability(
            architecture,
            False,
            f"{len(risky)} of {integer_ops} integer matrix products may clamp in 16 bits on x86-64 CPUs without "
            f"VNNI/AMX and not on those with it: {first}{more}",
            tuple(name for name, _ in risky),
        )
    if integer_ops == 0:
        return Portability(architecture, True, "no integer matrix products: nothing can clamp")
    converted_note = (
        f"; the full-range s8 weights of {converted_ops} of them are converted to u8 by onnxruntime on CPUs without "
        f"VNNI (session option {X64_QUANT_PRECISION} = 1 there, optimization level extended everywhere: the manifest's "
        "runtime.onnxruntime)"
        if converted_ops
        else ""
    )
    return Portability(
        architecture,
        True,
        f"all {integer_ops} integer matrix products are saturation-free (u8 weights, or s8 weights within "
        f"+-{SAFE_S8_WEIGHT}{', or converted to u8' if converted_ops else ''}): the same integers with or without "
        f"VNNI/AMX{converted_note}",
    )


def verdict_scope(portability: Portability, machine: dict[str, Any]) -> str:
    """One sentence for the CLI and report.md: where the gate's verdict holds."""
    flags = describe_int8_flags(machine["int8_flags"])
    if portability.saturation_free:
        return (
            f"The gate ran on {machine['cpu']} ({flags}); its verdict holds on every {portability.architecture} "
            f"host: {portability.reason}."
        )
    kind = "with" if machine["int8_dot_product"] else "without"
    return (
        f"The gate's verdict holds only for the instruction set it ran on: {machine['cpu']} ({flags}), i.e. "
        f"{portability.architecture} hosts {kind} VNNI/AMX. {portability.reason}. Lambda runs on both kinds; "
        "for a verdict that holds on every host, quantize with reduce_range = true or weight_type = \"uint8\"."
    )
