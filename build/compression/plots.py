"""The ``auto`` search's Pareto plot (``search.png``): gate metric against latency, one marker
per candidate."""

from __future__ import annotations

from pathlib import Path

from slimserve.build.compression.results import SearchResult
from slimserve.build.figures import pyplot, save_figure
from slimserve.build.gate.validate import GateResult


def write_pareto_plot(path: Path, result: SearchResult, *, name: str) -> Path:
    """Metric vs latency, one marker per candidate (area ~ size), passing ones in blue, the
    chosen one starred, the Pareto front of passing candidates drawn, fp32 in grey."""
    plt = pyplot()

    def metric_of(gate: GateResult) -> float:
        cosines = [check.value for check in gate.checks if check.name.startswith("min cosine")]
        return min(cosines) if cosines else gate.candidate

    first_gate = next((r.gate for r in [result.baseline, *result.results] if r.gate is not None), None)
    metric_label = "min cosine (worst run)" if first_gate and any(
        c.name.startswith("min cosine") for c in first_gate.checks
    ) else (first_gate.metric if first_gate else "metric")
    figure, axis = plt.subplots(figsize=(8.5, 5.2))
    sizes = [r.bytes for r in [result.baseline, *result.results] if r.bytes]
    largest = max(sizes) if sizes else 1
    points = []
    for r in [result.baseline, *result.results]:
        if r.gate is None or r.latency is None or r.bytes is None:
            continue
        x, y = r.latency.value(result.clock), metric_of(r.gate)
        area = 40 + 460 * r.bytes / largest
        if r.status == "baseline":
            color, label = "#888888", "fp32 reference"
        elif r.passed:
            color, label = "#2a7ab0", "passes"
        elif r.status == "failed requirement":
            color, label = "#e69f00", "passes gate, misses a requirement"
        else:
            color, label = "#c0392b", "fails gate"
        axis.scatter([x], [y], s=area, c=color, alpha=0.6, edgecolors="black", linewidths=0.5, label=label)
        if r.chosen:
            axis.scatter([x], [y], s=area * 2.2, marker="*", c="gold", edgecolors="black", linewidths=0.8, label="chosen", zorder=5)
        axis.annotate(str(r.index), (x, y), fontsize=7, ha="center", va="center", zorder=6)
        if r.passed:
            points.append((x, y))
    front, best_y = [], -float("inf")
    for x, y in sorted(points):
        if y > best_y:
            front.append((x, y))
            best_y = y
    if len(front) > 1:
        axis.plot(*zip(*front), "--", color="#2a7ab0", linewidth=1, label="Pareto front (passing)")
    if first_gate is not None:
        threshold = None
        for check in first_gate.checks:
            if check.name.startswith("min cosine"):
                threshold = check.threshold
            elif check.name == "accuracy loss":
                threshold = first_gate.reference - check.threshold
        if threshold is not None:
            axis.axhline(threshold, color="#c0392b", linewidth=0.8, linestyle=":", label="gate threshold")
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axis.legend(unique.values(), unique.keys(), fontsize=8, loc="lower right")
    axis.set_xlabel(
        f"latency, median {'CPU ' if result.clock == 'cpu' else ''}ms ({result.threads} thread(s), shape {result.latency_shape})"
    )
    axis.set_ylabel(metric_label)
    axis.set_title(f"slimserve auto compression: {name} (marker area = model size; numbers = table rows)")
    axis.grid(alpha=0.3)
    return save_figure(figure, path)
