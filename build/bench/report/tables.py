"""The per-example tables of BENCHMARKS.md (speed, size, cold start, warm overhead, load,
explain) and
the JSON-vs-binary table, each from its section of results.json; every timed table says which
CPU and int8 instruction sets it was measured on."""

from __future__ import annotations

from typing import Any

from slimserve.build.bench.stats import fmt_mib, fmt_ms, fmt_x
from slimserve.build.machine import describe_int8_flags

UNSTABLE_SPREAD_X = 3.0


def measured_on(section: dict[str, Any]) -> list[str]:
    """The line (and a blank) that puts the host a timed section ran on beside its table."""
    host = section.get("machine")
    if not host:
        return []
    return [
        f"Measured on {host.get('cpu')} ({host.get('architecture')}), int8 instruction sets: "
        f"{describe_int8_flags(host.get('int8_flags') or [])}.",
        "",
    ]


def speed_table(example: dict[str, Any]) -> list[str]:
    speed = example.get("speed") or {}
    if not speed.get("cells"):
        return ["_not measured_" + (f": {speed.get('error')}" if speed.get("error") else "")]
    lines = [
        *measured_on(speed),
        "| threads | input | PyTorch eager fp32 | ONNX Runtime fp32 | slimserve | vs ORT fp32 | vs PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in speed["cells"]:
        engines = cell["engines"]

        def value(name: str, engines: dict[str, Any] = engines) -> str:
            entry = engines.get(name)
            if not entry:
                return "n/a"
            unstable = (entry.get("round_median_spread_x") or 1.0) > UNSTABLE_SPREAD_X
            return f"{fmt_ms(entry['median_ms'])} / {fmt_ms(entry['p90_ms'])}{' †' if unstable else ''}"

        lines.append(
            f"| {cell['threads']} | {cell['input']} | {value('pytorch_eager_fp32')} | {value('onnxruntime_fp32')} | "
            f"{value('slimserve')} | {fmt_x(cell['speedup_vs_onnxruntime_fp32_x'])} | {fmt_x(cell['speedup_vs_pytorch_eager_x'])} |"
        )
    runs = min(engine["runs"] for cell in speed["cells"] for engine in cell["engines"].values())
    lines += ["", (f"Median / p90 in ms over ≥ {runs} runs per engine and cell, interleaved in 10 rounds; speed-ups are "
              "ratios of medians.")]
    if any((engine.get("round_median_spread_x") or 1.0) > UNSTABLE_SPREAD_X for cell in speed["cells"] for engine in cell["engines"].values()):
        lines += [
            (f"† unstable: the medians of its 10 rounds differ by more than {UNSTABLE_SPREAD_X:.0f}× (background load on "
            "this shared machine). Two-thread PyTorch suffers most: an OpenMP parallel loop waits for its second "
            "thread whenever another process holds that core, while onnxruntime's calling thread does the work itself.")
        ]
    return lines


def size_table(example: dict[str, Any]) -> list[str]:
    size = example.get("size") or {}
    if not size:
        return ["_not measured_"]
    return [
        "| artefact | size | limit | share of limit |",
        "|---|---|---|---|",
        f"| fp32 ONNX export | {fmt_mib(size['fp32_onnx_bytes'])} | | |",
        (f"| shipped model ({(size.get('compression') or {}).get('method', '?')}) | {fmt_mib(size['shipped_model_bytes'])} "
        f"({size['shipped_vs_fp32_pct']:.1f} % of fp32) | | |"),
        f"| lambda.zip, zipped | {fmt_mib(size['zip_zipped_bytes'])} | 50 MiB direct upload | {size['zipped_of_limit_pct']:.0f} % |",
        (f"| lambda.zip, unzipped ({size['zip_files']} files) | {fmt_mib(size['zip_unzipped_bytes'])} | 250 MiB | "
        f"{size['unzipped_of_limit_pct']:.0f} % |"),
    ]


def cold_table(example: dict[str, Any]) -> list[str]:
    cold = example.get("cold_start") or {}
    if not cold or cold.get("skipped") or cold.get("error"):
        return [f"_not measured: {cold.get('skipped') or cold.get('error') or 'section did not run'}_"]
    contenders = cold["contenders"]
    floor = contenders["floor"].get("median_total_ms")
    torch = contenders.get("pytorch_fastapi", {}).get("median_total_ms")
    lines = [
        *measured_on(cold),
        "| contender | median total ms | min – max | interpreter | import + init | first request | × floor | % of PyTorch | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "floor": "floor: import onnxruntime + numpy, open session",
        "floor_default_options": "floor at the handler's default session options (level basic)",
        "slimserve": "**slimserve** `slimserve.handler.main`",
        "pytorch_fastapi": "PyTorch + FastAPI + Mangum (baseline)",
        "onnx_fastapi": "hand-written onnxruntime + FastAPI + Mangum",
    }
    for name, entry in contenders.items():
        total = entry.get("median_total_ms")
        lines.append(
            f"| {labels.get(name, name)} | {fmt_ms(total)} | {fmt_ms(entry.get('min_total_ms'))} – {fmt_ms(entry.get('max_total_ms'))} | "
            f"{fmt_ms(entry.get('median_interpreter_ms'))} | "
            f"{fmt_ms(entry.get('median_import_init_ms'))} | "
            f"{'—' if name.startswith('floor') else fmt_ms(entry.get('median_first_request_ms'))} | "
            f"{fmt_x(None if not floor or total is None else total / floor)} | "
            f"{'n/a' if not torch or total is None else f'{100 * total / torch:.1f} %'} | {entry.get('runs', 0)} |"
        )
    lines += ["", cold.get("method", "")]
    for note in cold.get("notes", []):
        lines.append(f"Note: {note}")
    steps = cold.get("init_steps_in_process_ms") or {}
    if "sha256_ms" in steps:
        lines += [
            "",
            (f"Handler init steps, timed in the suite's process: sha256 of the model {fmt_ms(steps['sha256_ms'])} ms, "
            f"session open {fmt_ms(steps['session_open_ms'])} ms, create_app (task adapter, e.g. tokenizer + warm-up "
            f"batch; OpenAPI document) {fmt_ms(steps['create_app_ms'])} ms."),
        ]
    profile = cold.get("import_profile") or {}
    beyond = profile.get("slimserve_beyond_floor_self_ms") or {}
    if beyond:
        lines += [
            "",
            "Imports the handler adds to the floor (self time, one `-X importtime` run, inflated by the tracing): "
            + ", ".join(f"{name} {value:.0f} ms" for name, value in list(beyond.items())[:8])
            + f"; total {profile.get('slimserve_beyond_floor_total_ms', 0):.0f} ms.",
        ]
    return lines


def warm_table(example: dict[str, Any]) -> list[str]:
    warm = example.get("warm") or {}
    if not warm.get("paths"):
        return [f"_not measured: {warm.get('error', '')}_"]
    paths = warm["paths"]
    per_request = warm.get("overhead_per_request") or {}

    def row(label: str, name: str) -> str:
        if name not in paths:
            return f"| {label} | n/a | n/a | |"
        overhead = per_request.get(name)
        text = f"{fmt_ms(overhead['median_ms'])} / {fmt_ms(overhead['p90_ms'])}" if overhead else ""
        return f"| {label} | {fmt_ms(paths[name]['median_ms'])} | {fmt_ms(paths[name]['p90_ms'])} | {text} |"

    lines = [
        *measured_on(warm),
        f"Request: {warm['request']}; {warm['method']}; session threads: {warm['threads']}.",
        "",
        "| path | median ms | p90 ms | overhead over its session.run, median / p90 ms |",
        "|---|---|---|---|",
        row("bare `session.run`", "bare_session_run"),
        row("service.infer (decode, task, encode; no Mangum)", "service_infer"),
        row("Mangum + app (event → result)", "mangum_app"),
        row("`slimserve.handler.main` (+ Powertools log + EMF)", "handler_main"),
    ]
    if "tokenize" in paths:
        lines.append(row("tokenization alone", "tokenize"))
    if "encode_json_response" in paths:
        lines.append(row("JSON-encoding the response alone", "encode_json_response"))
    lines += ["", f"Difference of medians, slimserve.handler.main vs bare session.run: {fmt_ms(warm.get('difference_of_medians_handler_main_ms'))} ms."]
    return lines


def explain_table(example: dict[str, Any]) -> list[str]:
    explain = example.get("explain") or {}
    latency = explain.get("latency") or {}
    if not latency.get("runs"):
        return ["_not measured_" + (f": {explain.get('error')}" if explain.get("error") else "")]
    exact = "exact" if explain["exact"] else f"{explain['samples']} samples"
    return [
        *measured_on(explain),
        f"Request: {explain['request']}; `POST .../explain` through Mangum + the app, warm; session threads: "
        f"{explain['threads']}.",
        "",
        "| method | players | model evaluations | median ms | p90 ms | runs | residual |",
        "|---|---|---|---|---|---|---|",
        f"| {explain['method']} ({exact}) | {explain['players']} | {explain['model_evaluations']:,} | "
        f"{fmt_ms(latency['median_ms'])} | {fmt_ms(latency['p90_ms'])} | {latency['runs']} | {explain['residual']:.2g} |",
    ]


def binary_table(binary: dict[str, Any]) -> list[str]:
    if not binary.get("paths"):
        return [f"_not measured: {binary.get('error', '')}_"]
    paths = binary["paths"]
    return [
        *measured_on(binary),
        f"{binary.get('payload', '')}; {binary.get('model', '')}. {binary.get('method', '')}.",
        "",
        "| encoding | median ms | p90 ms | request body | Lambda event | response body |",
        "|---|---|---|---|---|---|",
        (f"| JSON | {fmt_ms(paths['json']['median_ms'])} | {fmt_ms(paths['json']['p90_ms'])} | {fmt_mib(binary.get('json_request_bytes'))} | "
        f"{fmt_mib(binary.get('json_event_bytes'))} | {fmt_mib(binary.get('json_response_bytes'))} |"),
        (f"| binary | {fmt_ms(paths['binary']['median_ms'])} | {fmt_ms(paths['binary']['p90_ms'])} | "
        f"{fmt_mib(binary.get('binary_request_bytes'))} | {fmt_mib(binary.get('binary_event_bytes'))} (base64) | "
        f"{fmt_mib(binary.get('binary_response_bytes'))} |"),
        "",
        (f"Binary is **{fmt_x(binary.get('binary_speedup_x'))}** faster. The JSON response event is close to Lambda's 6 MiB "
        "synchronous payload limit for this size; binary stays far below it even base64-encoded."),
    ]


def load_table(example: dict[str, Any]) -> list[str]:
    load = example.get("load") or {}
    if not load.get("levels"):
        return [f"_not measured: {load.get('error', '')}_"]
    lines = [
        *measured_on(load),
        ("| clients | environments | requests | stopped by | errors | throughput req/s | p50 ms | p90 ms | p99 ms | "
        "RSS, all environments: before → after | largest environment | growth per 1,000 req |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in load["levels"]:
        growth = level.get("rss_growth_per_1000_requests_bytes")
        lines.append(
            f"| {level['concurrency']} | {level['environments']} | {level['requests']} | {level['stopped_by']} | {level['errors']} | "
            f"{level['throughput_rps']:.0f} | {fmt_ms(level['p50_ms'])} | {fmt_ms(level['p90_ms'])} | {fmt_ms(level['p99_ms'])} | "
            f"{fmt_mib(level['rss_before'].get('total_bytes'))} → {fmt_mib(level['rss_after'].get('total_bytes'))} | "
            f"{fmt_mib(level['rss_after'].get('max_environment_bytes'))} | "
            f"{'n/a' if growth is None else f'{growth / 1024:+.1f} KiB'} |"
        )
    longest = max(load["levels"], key=lambda level: level["requests"])
    if longest.get("rss_growth_bytes") is not None:
        lines += [
            "",
            f"Memory over the longest run ({longest['requests']:,} requests, {longest['concurrency']} clients on "
            f"{longest['environments']} environments): total RSS {longest['rss_growth_bytes'] / 1024:+.0f} KiB "
            f"({longest['rss_growth_bytes'] / max(1, longest['requests']):+.0f} bytes per request)"
            + (
                f"; first half {longest['rss_growth_halves_bytes'][0] / 1024:+.0f} KiB, second half "
                f"{longest['rss_growth_halves_bytes'][1] / 1024:+.0f} KiB (growth that continues in the second half "
                "is a leak; growth only in the first is warm-up)."
                if len(longest.get("rss_growth_halves_bytes") or []) == 2 and None not in longest["rss_growth_halves_bytes"]
                else "."
            ),
        ]
    lines += [
        "",
        load.get("method", "") + ("; EMULATION (not the zip's own Python)" if load.get("emulated") else "") + ".",
        ("Client, gateway, runtime API and every environment share the same 2 cores: these numbers describe "
        "`slimserve local`, not Lambda's capacity."),
    ]
    return lines
