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
  one that may clamp.

arm64's int8 kernels (dot-product instructions, or 16-bit products widened before they are
summed) do not clamp. Float arithmetic (fp32 and fp16 models, and the float parts of int8 ones)
may still differ in the last bits between kernels; the gate's bootstrap margin covers that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimserve.build.machine import cpu_info, describe_int8_flags, has_int8_dot_product

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


def integer_portability(model_path: Path, architecture: str) -> Portability:
    """Whether ``model_path`` gives the same integer results on every ``architecture`` host."""
    import onnx
    from onnx import TensorProto, numpy_helper

    if architecture != "x86_64":
        return Portability(architecture, True, f"{architecture}: onnxruntime's int8 kernels accumulate without clamping")
    graph = onnx.load(str(model_path), load_external_data=False).graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def clamps(weight: str) -> str | None:
        """Why this weight may clamp, or None when it cannot."""
        tensor = constants.get(weight)
        if tensor is None:
            return "its weight is not a constant"
        if tensor.data_type == TensorProto.UINT8:
            return None
        if tensor.data_type != TensorProto.INT8:
            return None  # not an 8-bit integer operand: no u8 x s8 kernel
        values = numpy_helper.to_array(tensor)
        largest = int(abs(values.astype("int16")).max()) if values.size else 0
        return None if largest <= SAFE_S8_WEIGHT else f"s8 weights up to {largest} (safe: {SAFE_S8_WEIGHT})"

    risky: list[tuple[str, str]] = []
    integer_ops = 0
    for node in graph.node:
        label = node.name or node.op_type
        if node.op_type in _WEIGHT_INPUT and len(node.input) > _WEIGHT_INPUT[node.op_type]:
            integer_ops += 1
            why = clamps(node.input[_WEIGHT_INPUT[node.op_type]])
            if why:
                risky.append((label, why))
        elif node.op_type == "DequantizeLinear" and any(user.op_type in _QDQ_CONSUMERS for user in consumers.get(node.output[0], [])):
            tensor = constants.get(node.input[0])
            if tensor is not None and tensor.data_type in (TensorProto.INT8, TensorProto.UINT8):
                integer_ops += 1
                why = clamps(node.input[0])
                if why:
                    risky.append((label, why))
        elif node.op_type == "MatMulNBits":
            attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
            if int(attributes.get("accuracy_level", 0)) == 4:
                integer_ops += 1
                bits = int(attributes.get("bits", 4))
                if _U8_MAX * 2 * (2**bits - 1) > _INT16_MAX:
                    risky.append((label, f"MatMulNBits with {bits}-bit blocks computed in int8 (accuracy_level 4)"))
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
    return Portability(
        architecture,
        True,
        f"all {integer_ops} integer matrix products are saturation-free (u8 weights, or s8 weights within "
        f"+-{SAFE_S8_WEIGHT}): the same integers with or without VNNI/AMX",
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
