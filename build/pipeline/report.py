"""report.md (for people) and report.png (sizes and the gate's metric, at a glance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimserve.build.figures import pyplot, save_figure
from slimserve.build.gate.explanations import ExplanationReport
from slimserve.build.gate.validate import GateResult
from slimserve.build.pipeline.bundle import UNZIPPED_LIMIT, ZIP_DIRECT_UPLOAD_LIMIT
from slimserve.build.units import KIB, format_bytes, mib


def write_report(
    path: Path,
    *,
    name: str,
    gate: GateResult,
    sizes: dict[str, int],
    compression: dict[str, Any],
    settings: dict[str, Any],
    bundle: dict[str, Any] | None,
    timings: dict[str, float],
    plot: str | None,
    verdict_scope: str | None = None,
    explanations: ExplanationReport | None = None,
) -> Path:
    verdict = "PASSED" if gate.passed else "FAILED"
    lines = [
        f"# slimserve build report: {name}",
        "",
        f"**Accuracy gate: {verdict}** on {gate.samples} held-out samples.",
        "",
    ]
    if gate.output:
        lines += [
            f"Scored output: `{gate.output}`, as the API serves it: before bundling, the handler loaded the model "
            "and answered every held-out request as the gate scored it.",
            "",
        ]
    lines += [
        "## Gate",
        "",
        "| check | value | threshold | result |",
        "|---|---|---|---|",
    ]
    for check in gate.checks:
        result = "ok" if check.passed else f"missed by {abs(check.value - check.threshold):.4g}"
        lines.append(f"| {check.name} | {check.value:.6g} | {check.comparison} {check.threshold:.6g} | {result} |")
    lines += ["", "## Metrics", "", "| metric | original | shipped |", "|---|---|---|"]
    lines.append(f"| {gate.metric} | {gate.reference:.4f} | {gate.candidate:.4f} |")
    for key, value in gate.extra.items():
        if isinstance(value, float):
            lines.append(f"| {key} | | {value:.6g} |")
    bounds = gate.extra.get("bounds")
    if bounds:
        lines += ["", _bounds_note(bounds)]
    if verdict_scope:
        lines += ["", "## Where the verdict holds", "", verdict_scope]
        machine = gate.extra.get("gate_machine")
        if machine:
            flags = ", ".join(machine["int8_flags"]) or "none"
            lines += ["", f"Gate host: {machine['cpu']} ({machine['machine']}); int8-relevant instruction sets: {flags}."]
    lines += ["", "## Sizes", "", "| artefact | size |", "|---|---|"]
    for key, value in sizes.items():
        lines.append(f"| {key} | {format_bytes(value, 2)} |")
    if sizes.get("reference_bytes") and sizes.get("model_bytes"):
        lines.append(f"| shipped / fp32 | {sizes['model_bytes'] / sizes['reference_bytes']:.1%} |")
    if bundle:
        lines += [
            f"| lambda.zip zipped | {format_bytes(int(bundle['zipped_bytes']), 2)} (limit {mib(ZIP_DIRECT_UPLOAD_LIMIT)} direct upload) |",
            f"| lambda.zip unzipped | {format_bytes(int(bundle['unzipped_bytes']), 2)} (limit {mib(UNZIPPED_LIMIT)}) |",
        ]
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    for key, value in {**{f"compression.{k}": v for k, v in compression.items()}, **settings}.items():
        lines.append(f"| {key} | `{value}` |")
    if timings:
        lines += ["", "## Step timings", "", "| step | seconds |", "|---|---|"]
        lines += [f"| {step} | {seconds:.2f} |" for step, seconds in timings.items()]
    if explanations is not None:
        lines += ["", *explanations.markdown().splitlines()]
    if plot:
        lines += ["", f"![sizes and accuracy]({plot})"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bounds_note(bounds: dict[str, Any]) -> str:
    """How the *_lower_bound / *_upper_* metrics above were computed."""
    level = f"{bounds['confidence']:.0%}"
    parts = [f"Margins are one-sided {level} bounds for samples beyond the held-out set:"]
    if "quantile" in bounds:
        parts.append(
            f"quantile_cosine_lower_* is a bootstrap lower bound ({bounds['bootstrap_resamples']} resamples, seed "
            f"{bounds['bootstrap_seed']}) on the {bounds['quantile']:g} quantile of per-text cosine (a bound on the "
            "minimum would be the observed minimum itself); below_min_cosine_upper_* bounds the share of texts "
            "below validation.min_cosine (exact binomial)."
        )
    else:
        parts.append("accuracy_lower_bound and agreement_lower_bound are exact binomial (Clopper-Pearson) bounds.")
    return " ".join(parts)


def write_plot(
    path: Path, *, name: str, gate: GateResult, sizes: dict[str, int], explanations: ExplanationReport | None = None
) -> Path:
    panels = 2 if explanations is None else 4
    figure, axes = pyplot().subplots(1, panels, figsize=(4.5 * panels, 3.6))
    size_axis, metric_axis = axes[0], axes[1]
    if explanations is not None:
        explanations.draw(axes[2], axes[3])
    labels = ["fp32 ONNX", "shipped"]
    values = [sizes["reference_bytes"] / KIB, sizes["model_bytes"] / KIB]
    bars = size_axis.bar(labels, values, color=["#999999", "#2a7ab0"])
    size_axis.bar_label(bars, fmt="%.0f KiB")
    size_axis.set_ylabel("model size (KiB)")
    size_axis.set_title("size")
    metric_values = [gate.reference, gate.candidate]
    bars = metric_axis.bar(["original", "shipped"], metric_values, color=["#999999", "#2a7ab0" if gate.passed else "#c0392b"])
    metric_axis.bar_label(bars, fmt="%.4f")
    low = min(metric_values) - max(0.02, gate.tolerance * 2)
    metric_axis.set_ylim(max(0.0, low), 1.0 + 0.005)
    metric_axis.set_title(f"{gate.metric} ({'passed' if gate.passed else 'FAILED'})")
    figure.suptitle(f"slimserve: {name}")
    return save_figure(figure, path)
