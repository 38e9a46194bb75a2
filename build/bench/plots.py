"""PNG plots of results.json (matplotlib, Agg backend): latency, cold start, size, load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimserve.build.bench.report.targets import TARGETS
from slimserve.build.figures import pyplot, save_figure

ENGINE_COLORS = {"pytorch_eager_fp32": "#d62728", "onnxruntime_fp32": "#1f77b4", "slimserve": "#2ca02c"}
ENGINE_LABELS = {"pytorch_eager_fp32": "PyTorch eager fp32", "onnxruntime_fp32": "ONNX Runtime fp32", "slimserve": "slimserve"}


def _examples(results: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, example[key])
        for name, example in results.get("examples", {}).items()
        if isinstance(example.get(key), dict) and not example[key].get("skipped") and not example[key].get("error")
    ]


_COLD_PARTS = (
    ("median_interpreter_ms", "interpreter", "#c7c7c7"),
    ("median_import_init_ms", "import + init", "#1f77b4"),
    ("median_first_request_ms", "first request", "#ff7f0e"),
)
_MIB = 1024 * 1024


def _draw_latency(axes: list[Any], name: str, speed: dict[str, Any]) -> None:
    (axis,) = axes
    cells = speed["cells"]
    engines = [engine for engine in ENGINE_COLORS if any(engine in cell["engines"] for cell in cells)]
    width = 0.8 / len(engines)
    for offset, engine in enumerate(engines):
        xs, medians, errors = [], [], []
        for index, cell in enumerate(cells):
            entry = cell["engines"].get(engine)
            if entry:
                xs.append(index + offset * width)
                medians.append(entry["median_ms"])
                errors.append(max(0.0, entry["p90_ms"] - entry["median_ms"]))
        axis.bar(xs, medians, width, yerr=[[0] * len(errors), errors], color=ENGINE_COLORS[engine], label=ENGINE_LABELS[engine], capsize=2)
    axis.set_xticks([index + width * (len(engines) - 1) / 2 for index in range(len(cells))])
    axis.set_xticklabels([f"{cell['threads']} thr\n{cell['shape']}" for cell in cells])
    axis.set_yscale("log")
    axis.set_ylabel("ms per call (median, bar to p90; log)")
    axis.set_title(f"{name}: model speed")
    axis.legend(fontsize=8)


def _draw_cold_start(axes: list[Any], name: str, cold: dict[str, Any]) -> None:
    (axis,) = axes
    contenders = list(cold["contenders"].items())
    labels = [contender for contender, _ in contenders]
    left = [0.0] * len(contenders)
    for key, label, color in _COLD_PARTS:
        values = [max(0.0, entry.get(key) or 0.0) for _, entry in contenders]
        axis.barh(labels, values, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, values)]
    floor = cold["contenders"]["floor"].get("median_total_ms")
    if floor:
        axis.axvline(floor, color="black", linestyle=":", label="floor")
        axis.axvline(TARGETS["cold_vs_floor_x"] * floor, color="green", linestyle="--", label=f"{TARGETS['cold_vs_floor_x']:g}× floor (target)")
    torch = cold["contenders"].get("pytorch_fastapi", {}).get("median_total_ms")
    if torch:
        axis.axvline(TARGETS["cold_vs_pytorch_pct"] / 100 * torch, color="red", linestyle="--", label=f"{TARGETS['cold_vs_pytorch_pct']:g} % of PyTorch (target)")
    axis.invert_yaxis()
    axis.set_xlabel("ms from process spawn to first answer (median)")
    axis.set_title(f"{name}: cold start")
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)


def _draw_size(axes: list[Any], name: str, size: dict[str, Any]) -> None:
    model_axis, zip_axis = axes
    model_axis.bar(["fp32 ONNX", "shipped"], [(size["fp32_onnx_bytes"] or 0) / _MIB, size["shipped_model_bytes"] / _MIB],
                   color=["#1f77b4", "#2ca02c"])
    model_axis.axhline(0.3 * (size["fp32_onnx_bytes"] or 0) / _MIB, color="green", linestyle="--", label="30 % of fp32 (target)")
    model_axis.set_ylabel("MiB")
    model_axis.set_title(f"{name}: model size")
    model_axis.legend(fontsize=7)
    zip_axis.bar(["zipped", "unzipped"], [size["zip_zipped_bytes"] / _MIB, size["zip_unzipped_bytes"] / _MIB], color=["#9467bd", "#8c564b"])
    zip_axis.axhline(size["limit_zipped_direct_upload_bytes"] / _MIB, color="orange", linestyle="--", label="50 MiB direct upload")
    zip_axis.axhline(size["limit_unzipped_bytes"] / _MIB, color="red", linestyle="--", label="250 MiB unzipped")
    zip_axis.set_ylabel("MiB")
    zip_axis.set_title(f"{name}: lambda.zip vs Lambda limits")
    zip_axis.legend(fontsize=7)


def _draw_load(axes: list[Any], name: str, load: dict[str, Any]) -> None:
    (axis,) = axes
    levels = load["levels"]
    labels = [f"{level['concurrency']} clients\n{level['environments']} env" for level in levels]
    axis.bar(labels, [level["throughput_rps"] for level in levels], color="#1f77b4", label="throughput")
    axis.set_ylabel("requests / s", color="#1f77b4")
    twin = axis.twinx()
    twin.plot(labels, [level["p50_ms"] for level in levels], "o-", color="#2ca02c", label="p50")
    twin.plot(labels, [level["p99_ms"] for level in levels], "s-", color="#d62728", label="p99")
    twin.set_ylabel("latency ms")
    twin.legend(fontsize=7, loc="upper left")
    axis.set_title(f"{name}: slimserve local on 127.0.0.1")


# file, results section, whether a record has something to plot, axes rows, column width and
# height (inches), what draws one example's column.
_PLOTS: tuple[tuple[str, str, Callable[[dict[str, Any]], Any], int, float, float, Callable[..., None]], ...] = (
    ("latency.png", "speed", lambda speed: speed.get("cells"), 1, 6.5, 4.2, _draw_latency),
    ("cold_start.png", "cold_start", lambda cold: cold.get("contenders"), 1, 6.5, 4.6, _draw_cold_start),
    ("size.png", "size", lambda size: True, 2, 5.5, 6.5, _draw_size),
    ("load.png", "load", lambda load: load.get("levels"), 1, 6.0, 3.8, _draw_load),
)


def write_plots(results: dict[str, Any], out: Path) -> list[str]:
    """Write every plot the results allow (one column per example); returns their file names
    (in ``out``)."""
    written = []
    for file, section, plottable, rows, column_width, height, draw in _PLOTS:
        examples = [(name, record) for name, record in _examples(results, section) if plottable(record)]
        if not examples:
            continue
        figure, axes = pyplot().subplots(
            rows, len(examples), figsize=(column_width * len(examples), height), squeeze=False
        )
        for column, (name, record) in enumerate(examples):
            draw([axes[row][column] for row in range(rows)], name, record)
        save_figure(figure, out / file)
        written.append(file)
    return written
