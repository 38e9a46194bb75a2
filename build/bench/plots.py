"""PNG plots of results.json (matplotlib, Agg backend): latency, cold start, size, load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ENGINE_COLORS = {"pytorch_eager_fp32": "#d62728", "onnxruntime_fp32": "#1f77b4", "slimserve": "#2ca02c"}
ENGINE_LABELS = {"pytorch_eager_fp32": "PyTorch eager fp32", "onnxruntime_fp32": "ONNX Runtime fp32", "slimserve": "slimserve"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _examples(results: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, example[key])
        for name, example in results.get("examples", {}).items()
        if isinstance(example.get(key), dict) and not example[key].get("skipped") and not example[key].get("error")
    ]


def plot_latency(results: dict[str, Any], path: Path) -> Path | None:
    examples = [(name, speed) for name, speed in _examples(results, "speed") if speed.get("cells")]
    if not examples:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(examples), figsize=(6.5 * len(examples), 4.2), squeeze=False)
    for axis, (name, speed) in zip(axes[0], examples):
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
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_cold_start(results: dict[str, Any], path: Path) -> Path | None:
    examples = [(name, cold) for name, cold in _examples(results, "cold_start") if cold.get("contenders")]
    if not examples:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(examples), figsize=(6.5 * len(examples), 4.6), squeeze=False)
    parts = (("median_interpreter_ms", "interpreter", "#c7c7c7"), ("median_import_init_ms", "import + init", "#1f77b4"),
             ("median_first_request_ms", "first request", "#ff7f0e"))
    for axis, (name, cold) in zip(axes[0], examples):
        contenders = list(cold["contenders"].items())
        labels = [contender for contender, _ in contenders]
        left = [0.0] * len(contenders)
        for key, label, color in parts:
            values = [max(0.0, entry.get(key) or 0.0) for _, entry in contenders]
            axis.barh(labels, values, left=left, color=color, label=label)
            left = [a + b for a, b in zip(left, values)]
        floor = cold["contenders"]["floor"].get("median_total_ms")
        if floor:
            axis.axvline(floor, color="black", linestyle=":", label="floor")
            axis.axvline(2 * floor, color="green", linestyle="--", label="2× floor (target)")
        torch = cold["contenders"].get("pytorch_fastapi", {}).get("median_total_ms")
        if torch:
            axis.axvline(0.15 * torch, color="red", linestyle="--", label="15 % of PyTorch (target)")
        axis.invert_yaxis()
        axis.set_xlabel("ms from process spawn to first answer (median)")
        axis.set_title(f"{name}: cold start")
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_size(results: dict[str, Any], path: Path) -> Path | None:
    examples = _examples(results, "size")
    if not examples:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(2, len(examples), figsize=(5.5 * len(examples), 6.5), squeeze=False)
    mib = 1024 * 1024
    for column, (name, size) in enumerate(examples):
        model_axis, zip_axis = axes[0][column], axes[1][column]
        model_axis.bar(["fp32 ONNX", "shipped"], [(size["fp32_onnx_bytes"] or 0) / mib, size["shipped_model_bytes"] / mib],
                       color=["#1f77b4", "#2ca02c"])
        model_axis.axhline(0.3 * (size["fp32_onnx_bytes"] or 0) / mib, color="green", linestyle="--", label="30 % of fp32 (target)")
        model_axis.set_ylabel("MiB")
        model_axis.set_title(f"{name}: model size")
        model_axis.legend(fontsize=7)
        zip_axis.bar(["zipped", "unzipped"], [size["zip_zipped_bytes"] / mib, size["zip_unzipped_bytes"] / mib], color=["#9467bd", "#8c564b"])
        zip_axis.axhline(size["limit_zipped_direct_upload_bytes"] / mib, color="orange", linestyle="--", label="50 MiB direct upload")
        zip_axis.axhline(size["limit_unzipped_bytes"] / mib, color="red", linestyle="--", label="250 MiB unzipped")
        zip_axis.set_ylabel("MiB")
        zip_axis.set_title(f"{name}: lambda.zip vs Lambda limits")
        zip_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_load(results: dict[str, Any], path: Path) -> Path | None:
    examples = [(name, load) for name, load in _examples(results, "load") if load.get("levels")]
    if not examples:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(examples), figsize=(6 * len(examples), 3.8), squeeze=False)
    for axis, (name, load) in zip(axes[0], examples):
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
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_plots(results: dict[str, Any], out: Path) -> list[str]:
    """Write every plot the results allow; returns their file names (in ``out``)."""
    written = []
    for name, function in (
        ("latency.png", plot_latency),
        ("cold_start.png", plot_cold_start),
        ("size.png", plot_size),
        ("load.png", plot_load),
    ):
        if function(results, out / name) is not None:
            written.append(name)
    return written
