"""Where does compression lose accuracy? Per-node error attribution for the report.

Two ways, both on onnxruntime's own tools:

- ``ablation`` (any method): leave-one-out. Compress with everything as configured except one
  node (or, for static QDQ, one tensor's producers and consumers) kept in fp32 and record how
  much closer to the fp32 model it gets: by an ``OutputProbe`` on the *calibration* data when
  there is some (auto does this: the held-out set only ever judges, it never chooses), else by
  the gate's margin. The nodes whose exclusion helps most are where accuracy is lost; ``auto``
  tries keeping them in fp32.
- ``qdq_errors`` (static int8, QDQ; in ``qdq``): ``onnxruntime.quantization.qdq_loss_debug``
  runs the fp32 and the QDQ model on calibration samples and reports each activation's and each
  weight's signal-to-quantization-noise ratio (dB; lower is worse).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimserve.build.compression.calibration import ArrayCalibrationReader
from slimserve.build.compression.graph import (
    node_table,
    quantizable_nodes,
    resolve_nodes,
    weight_bytes,
)
from slimserve.build.compression.latency import session_for
from slimserve.build.compression.methods import compress, fuse_transformer
from slimserve.build.compression.qdq import qdq_errors
from slimserve.build.config import CompressionConfig
from slimserve.build.errors import CompressionError
from slimserve.build.gate.validate import GateResult

Log = Callable[[str], None]


def gate_margin(gate: GateResult) -> float:
    """The gate's worst slack: min over checks of how far the value is on the good side of its
    threshold (negative when failing). Comparable across candidates of one evaluator."""
    slacks = [
        (check.value - check.threshold) if check.comparison == ">=" else (check.threshold - check.value)
        for check in gate.checks
    ]
    return float(min(slacks)) if slacks else 0.0


def gate_fidelity(gate: GateResult) -> float:
    """A continuous tie-breaker when the margin is discrete (accuracy on a few hundred samples
    often does not move): minus the largest output difference, or the worst cosine."""
    if "max_abs_output_diff" in gate.extra:
        return -float(gate.extra["max_abs_output_diff"])
    cosines = [float(value) for key, value in gate.extra.items() if key.startswith("min_cosine")]
    return min(cosines) if cosines else 0.0


def gate_score(gate: GateResult) -> tuple[float, float]:
    return gate_margin(gate), gate_fidelity(gate)


class OutputProbe:
    """How close a candidate's outputs stay to the fp32 model's, on calibration samples (each
    run alone, padding cut): per-sample cosine of the flattened first output. Cheap, generic
    (logits or embeddings), and it never touches the held-out set: choosing which nodes to keep
    in fp32 with the gate's own data would tune the model on its test set."""

    def __init__(self, reference_model: Path, inputs: Mapping[str, np.ndarray], samples: int = 64) -> None:
        self.feeds = list(ArrayCalibrationReader(inputs, samples))
        session = session_for(reference_model, 1)
        self.reference = [session.run(None, feed)[0].astype(np.float64).ravel() for feed in self.feeds]

    def score(self, candidate: Path) -> tuple[float, float]:
        """(min, mean) cosine over the samples."""
        session = session_for(candidate, 1, as_served=True)
        cosines = []
        for feed, reference in zip(self.feeds, self.reference):
            output = session.run(None, feed)[0].astype(np.float64).ravel()
            cosines.append(float(reference @ output / max(np.linalg.norm(reference) * np.linalg.norm(output), 1e-30)))
        return float(min(cosines)), float(np.mean(cosines))


@dataclass
class NodeSensitivity:
    node: str
    op_type: str
    fp32_bytes: int
    margin: float  # with this node kept in fp32: gate margin, or the probe's min cosine
    fidelity: float  # gate fidelity tie-breaker, or the probe's mean cosine
    gain: float  # margin - baseline margin (> 0: keeping it fp32 helps)
    fidelity_gain: float
    passed: bool | None  # the gate's verdict (None when ranked by the calibration probe)
    checks: dict[str, float] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)  # the node and what must stay fp32 with it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SensitivityReport:
    method: str  # "ablation" | "qdq"
    measure: str  # "gate" (held-out gate margin) | "probe" (output cosine on calibration data)
    base: dict[str, Any]  # what was applied to the all-quantized baseline
    baseline_margin: float
    baseline_fidelity: float
    baseline_passed: bool
    rows: list[NodeSensitivity]
    complete: bool  # False when the time budget stopped it early
    seconds: float
    qdq_rows: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""  # which recipe was ablated (e.g. the auto candidate's name)

    def ranked(self) -> list[NodeSensitivity]:
        return sorted(self.rows, key=lambda row: (row.gain, row.fidelity_gain), reverse=True)

    def helpful(self) -> list[NodeSensitivity]:
        """Rows whose exclusion improves the gate (margin, else fidelity), most helpful first."""
        return [row for row in self.ranked() if row.gain > 1e-12 or (row.gain >= 0 and row.fidelity_gain > 1e-9)]

    def markdown(self, limit: int = 15) -> str:
        by_probe = self.measure == "probe"
        measured = (
            "min / mean cosine of the outputs on calibration samples" if by_probe else "the gate's margin on held-out data"
        )
        lines = [
            f"## Sensitivity{f' of {self.label}' if self.label else ''} (leave-one-out: each node kept in fp32 alone)",
            "",
            f"Baseline `{self.base.get('method')}`: {measured} "
            + (
                f"{self.baseline_margin:.5f} / {self.baseline_fidelity:.5f}" if by_probe
                else f"{self.baseline_margin:+.5g} ({'passes' if self.baseline_passed else 'fails'})"
            )
            + f"; {len(self.rows)} nodes ablated in {self.seconds:.1f} s"
            + ("" if self.complete else " (stopped by the time budget: partial)") + ".",
            "",
            "| rank | node | op | fp32 bytes | "
            + ("min cos if kept fp32 | gain | mean cos gain |" if by_probe else "margin if kept fp32 | gain | fidelity gain | gate |"),
            "|---|---|---|---|---|---|---|" + ("" if by_probe else "---|"),
        ]
        for rank, row in enumerate(self.ranked()[:limit], start=1):
            also = f" (+{len(row.excluded) - 1} with it)" if len(row.excluded) > 1 else ""
            value = f"{row.margin:.5f}" if by_probe else f"{row.margin:+.5g}"
            line = (
                f"| {rank} | `{row.node}`{also} | {row.op_type} | {row.fp32_bytes:,} | {value} | "
                f"{row.gain:+.5g} | {row.fidelity_gain:+.4g} |"
            )
            if not by_probe:
                line += f" {'passes' if row.passed else 'fails'} |"
            lines.append(line)
        if len(self.rows) > limit:
            lines.append(f"| … | {len(self.rows) - limit} more | | | | | |" + ("" if by_probe else " |"))
        if self.qdq_rows:
            lines += [
                "",
                "### Quantization noise per tensor (onnxruntime qdq_loss_debug, SQNR dB, lower is worse)",
                "",
                "| tensor | kind | produced by / used by | SQNR vs fp32 model (dB) | SQNR of its own Q/DQ (dB) |",
                "|---|---|---|---|---|",
            ]
            for row in self.qdq_rows[:limit]:
                xmodel = "" if row.get("xmodel_sqnr_db") is None else f"{row['xmodel_sqnr_db']:.2f}"
                lines.append(
                    f"| `{row['tensor']}` | {row['kind']} | `{row.get('node') or ''}` | {xmodel} | {row['qdq_sqnr_db']:.2f} |"
                )
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "measure": self.measure,
            "base": self.base,
            "baseline_margin": self.baseline_margin,
            "baseline_passed": self.baseline_passed,
            "complete": self.complete,
            "seconds": self.seconds,
            "rows": [row.to_dict() for row in self.ranked()],
            "qdq_rows": self.qdq_rows,
        }


# Ops a QDQ model quantizes "through": their input and output share one quantized tensor.
_PASS_THROUGH = {
    "Relu", "Clip", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "MaxPool",
    "AveragePool", "Slice", "Pad", "Split", "Resize",
}


def ablation_units(model_path: Path, method: str) -> list[tuple[str, str, list[str]]]:
    """(label node, op type, nodes kept fp32 together) for leave-one-out.

    Dynamic int8 and fp16: each node alone. Static QDQ quantizes *tensors*: an activation stays
    fp32 only if its producer and consumers all do, so a weighted node's unit also holds the
    chain that produces its input, back through pass-through ops (Relu, Reshape...) to and
    including the previous computing node."""
    if method != "static-int8":
        return [(name, op, [name]) for name, op in candidate_nodes(model_path, method)]
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    constants = {init.name for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    units = []
    for name, op in quantizable_nodes(model_path, method):
        node = next(n for n in graph.node if n.name == name)
        group = [name]
        frontier = [inp for inp in node.input if inp and inp not in constants]
        while frontier:
            producer = producers.get(frontier.pop())
            if producer is None or producer.name in group:
                continue
            group.append(producer.name)
            if producer.op_type in _PASS_THROUGH:
                frontier += [inp for inp in producer.input if inp and inp not in constants]
        units.append((name, op, group))
    return units


def candidate_nodes(model_path: Path, method: str) -> list[tuple[str, str]]:
    """The nodes keeping in fp32 can change: weighted quantizable nodes (int8), or every node
    with constant float inputs (fp16)."""
    if method == "fp16":
        sizes = weight_bytes(model_path)
        return [(name, op) for name, op in node_table(model_path) if sizes.get(name, 0) > 0]
    return quantizable_nodes(model_path, method)


def ablation(
    source: Path,
    config: CompressionConfig,
    evaluator: Any = None,
    *,
    probe: OutputProbe | None = None,
    calibration: Any = None,
    calibration_cache: Path | None = None,
    nodes: list[str] | None = None,
    deadline: float | None = None,
    log: Log | None = None,
    baseline: tuple[dict[str, Any], Path] | None = None,
) -> SensitivityReport:
    """Leave-one-out over ``nodes`` (default: every unit ``config.method`` would compress and
    that is not already excluded), scored by ``probe`` (output cosine on calibration samples)
    when given, else by ``evaluator.gate``. ``deadline`` (time.monotonic) stops early with a
    partial ranking. ``baseline``: (applied, path) of ``config``'s model, if already made."""
    if probe is None and evaluator is None:
        raise ValueError("ablation needs a probe (calibration data) or an evaluator")
    started = time.monotonic()

    def score(path: Path) -> tuple[float, float, bool | None, dict[str, float]]:
        if probe is not None:
            low, mean = probe.score(path)
            return low, mean, None, {"min cosine (calibration)": low, "mean cosine (calibration)": mean}
        gate = evaluator.gate(path)
        margin, fidelity = gate_score(gate)
        return margin, fidelity, gate.passed, {check.name: check.value for check in gate.checks}

    with tempfile.TemporaryDirectory(prefix="slimserve-sensitivity-") as scratch:
        scratch_path = Path(scratch)
        if config.transformer_fusion is not None:
            # Node names are those of the fused graph: ablate on it, and do not fuse again.
            fuse_transformer(source, scratch_path / "fused.onnx", config.transformer_fusion,
                             num_heads=config.fusion_num_heads, hidden_size=config.fusion_hidden_size)
            source = scratch_path / "fused.onnx"
            config = config.model_copy(update={"transformer_fusion": None})
        cache = calibration_cache or (scratch_path / "calibration.json")
        if baseline is None:
            applied = compress(source, scratch_path / "base.onnx", config, calibration=calibration, calibration_cache=cache)
            base_path = scratch_path / "base.onnx"
        else:
            applied, base_path = baseline
        base_margin, base_fidelity, base_passed, _ = score(base_path)
        already = set(resolve_nodes(source, config.nodes_to_exclude, config.op_types_to_exclude))
        sizes = weight_bytes(source)
        ops = dict(node_table(source))
        if nodes is not None:
            units = [(name, ops.get(name, "?"), [name]) for name in nodes]
        else:
            units = ablation_units(source, config.method)
        units = [(name, op, [n for n in group if n not in already]) for name, op, group in units if name not in already]
        rows: list[NodeSensitivity] = []
        complete = True
        for index, (node, op_type, group) in enumerate(units, start=1):
            if deadline is not None and time.monotonic() > deadline:
                complete = False
                break
            variant = config.model_copy(update={"nodes_to_exclude": [*config.nodes_to_exclude, *group]})
            path = scratch_path / "ablation.onnx"
            try:
                compress(source, path, variant, calibration=calibration, calibration_cache=cache)
            except CompressionError:
                continue
            margin, fidelity, passed, checks = score(path)
            rows.append(
                NodeSensitivity(
                    node=node,
                    op_type=op_type,
                    fp32_bytes=sum(sizes.get(n, 0) for n in group),
                    excluded=group,
                    margin=margin,
                    fidelity=fidelity,
                    gain=margin - base_margin,
                    fidelity_gain=fidelity - base_fidelity,
                    passed=passed,
                    checks=checks,
                )
            )
            if log:
                log(f"sensitivity {index}/{len(units)}: {node} kept fp32 -> {margin:+.5g} (gain {margin - base_margin:+.5g})")
    return SensitivityReport(
        method="ablation",
        measure="probe" if probe is not None else "gate",
        base=applied,
        baseline_margin=base_margin,
        baseline_fidelity=base_fidelity,
        baseline_passed=bool(base_passed),
        rows=rows,
        complete=complete,
        seconds=time.monotonic() - started,
    )


def sensitivity_report(
    source: Path,
    config: CompressionConfig,
    evaluator: Any,
    *,
    calibration: Mapping[str, np.ndarray] | None = None,
    budget_s: float = 300.0,
    log: Log | None = None,
) -> SensitivityReport:
    """The report's sensitivity section for a fixed method: leave-one-out ablation (scored on
    the calibration data when there is some, else by the gate), plus qdq_loss_debug's
    per-tensor noise when the method is static int8 (QDQ)."""
    report = ablation(
        source,
        config,
        evaluator,
        probe=OutputProbe(source, calibration) if calibration is not None else None,
        calibration=calibration,
        deadline=time.monotonic() + budget_s,
        log=log,
    )
    if config.method == "static-int8" and calibration is not None:
        with tempfile.TemporaryDirectory(prefix="slimserve-qdqdebug-") as scratch:
            qdq_path = Path(scratch) / "qdq.onnx"
            compress(source, qdq_path, config, calibration=calibration)
            report.qdq_rows = qdq_errors(source, qdq_path, calibration)
    return report
