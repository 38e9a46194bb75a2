"""What would close a missed target, read from the measurements themselves: the weights that
keep the model large, the imports and init steps that slow the cold start, where the
per-request overhead goes, what weighs in lambda.zip, and the CPU's int8 instruction sets."""

from __future__ import annotations

from typing import Any

from slimserve.build.bench.stats import fmt_mib
from slimserve.build.machine import describe_int8_flags, has_int8_dot_product


def zip_hint(size: dict[str, Any]) -> str:
    largest = size.get("zip_largest_entries_bytes") or {}
    top = ", ".join(f"{name} {fmt_mib(value)}" for name, value in list(largest.items())[:4])
    return f"largest unzipped entries: {top}; strip more of them or upload through S3 (no 50 MiB limit there)"


def size_hint(size: dict[str, Any], limit_pct: float) -> str:
    if not size.get("fp32_onnx_bytes"):
        return ""
    excess = size["shipped_model_bytes"] - limit_pct / 100 * size["fp32_onnx_bytes"]
    floats = sorted(size.get("shipped_float_initializers_bytes") or [], reverse=True)
    by_type = size.get("shipped_initializers_by_type_bytes") or {}
    largest = (size.get("shipped_largest_initializers") or [{}])[0]
    parts = [
        "weights in the shipped model: " + ", ".join(f"{dtype} {fmt_mib(value)}" for dtype, value in by_type.items() if value),
        f"largest: {largest.get('name')} ({largest.get('dtype')}, {fmt_mib(largest.get('bytes'))})",
    ]
    saved, needed = 0.0, 0
    for value in floats:  # int8 keeps a quarter of an fp32 weight
        if saved >= excess:
            break
        saved += 0.75 * value
        needed += 1
    if floats and saved >= excess > 0:
        parts.append(
            f"{fmt_mib(excess)} over the target: int8 for the {needed} largest fp32 weight(s) still kept "
            "(compression.nodes_to_exclude) would close it if the accuracy gate still passes"
        )
    elif excess > 0:
        parts.append(f"{fmt_mib(excess)} over the target: below int8 (4-bit weights, e.g. MatMulNBits) is needed")
    return "; ".join(parts)


def speed_hint(results: dict[str, Any], example: dict[str, Any]) -> str:
    flags = results.get("machine", {}).get("cpu", {}).get("int8_flags", [])
    compression = (example.get("size") or {}).get("compression") or {}
    excluded = len(compression.get("nodes_to_exclude") or [])
    parts = []
    if not has_int8_dot_product(flags):
        parts.append(
            f"this CPU reports {describe_int8_flags(flags)} and no VNNI/dot-product instructions, where "
            "onnxruntime's int8 MatMul kernels gain least (field notes: ~2.8× on an AVX512-VNNI host)"
        )
    if excluded:
        parts.append(f"{excluded} MatMul node(s) are kept in fp32 by compression.nodes_to_exclude and run at fp32 speed")
    parts.append("static int8 (QDQ, calibrated) removes the per-call activation quantization of dynamic int8")
    return "; ".join(parts)


def cold_hint(example: dict[str, Any]) -> str:
    cold = example.get("cold_start") or {}
    contenders = cold.get("contenders") or {}
    floor, slim = contenders.get("floor", {}), contenders.get("slimserve", {})
    profile = cold.get("import_profile") or {}
    beyond = profile.get("slimserve_beyond_floor_self_ms") or {}
    top = ", ".join(f"{name} {value:.0f} ms" for name, value in list(beyond.items())[:5])
    extra_init = (slim.get("median_import_init_ms") or 0) - (floor.get("median_import_init_ms") or 0)
    steps = cold.get("init_steps_in_process_ms") or {}
    init = ""
    if "sha256_ms" in steps:
        init = (
            f"; init steps (in process): sha256 of the model {steps['sha256_ms']:.0f} ms, session "
            f"{steps['session_open_ms']:.0f} ms, create_app (task adapter, e.g. tokenizer + warm-up) {steps['create_app_ms']:.0f} ms"
        )
    return (
        f"the handler's import + init takes {extra_init:.0f} ms more than the floor's (which includes the session) and "
        f"its first request {slim.get('median_first_request_ms', float('nan')):.0f} ms; imports beyond the floor "
        f"(self time, one -X importtime run): {top or 'n/a'}{init}. Lazy-import what the first request does not "
        "need, drop or defer init work the floor does not do, or move the init into a SnapStart snapshot"
    )


def overhead_hint(warm: dict[str, Any]) -> str:
    breakdown = warm.get("breakdown_ms") or {}
    if not breakdown:
        return ""
    parts = [
        f"per request: the service (JSON decode, checks, task, JSON encode) {breakdown['service_codec_and_task_ms']:.2f} ms",
        f"Mangum + ASGI {breakdown['mangum_and_asgi_ms']:.2f} ms",
        f"Powertools log line + EMF metrics {breakdown['powertools_log_and_metrics_ms']:.2f} ms",
    ]
    if "of_which_json_encode_ms" in breakdown:
        parts.insert(1, f"of which JSON-encoding the response {breakdown['of_which_json_encode_ms']:.2f} ms")
    if "of_which_tokenize_ms" in breakdown:
        parts.insert(1, f"of which tokenization {breakdown['of_which_tokenize_ms']:.2f} ms")
    return "; ".join(parts) + ": trim the largest (e.g. sample or batch the per-request log/metric records)"
