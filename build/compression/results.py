"""One ``auto`` search's outcome: a row per candidate (what it applied, its gate verdict, bytes,
latency, why it was rejected), the choice, and what goes into the manifest and ``report.md``.

A search leaves, in ``work/search/``: ``search.md`` (``SearchResult.markdown``), ``search.png``
(``plots.write_pareto_plot``) and ``search.json`` (``SearchResult.table``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimserve.build.compression.latency import Latency
from slimserve.build.compression.sensitivity import SensitivityReport, gate_score
from slimserve.build.compression.tables import markdown_table
from slimserve.build.config import CompressionConfig
from slimserve.build.gate.validate import GateResult

SEARCH_DIR = "search"
PLOT_FILE = "search.png"
MARKDOWN_FILE = "search.md"
TABLE_FILE = "search.json"


@dataclass
class CandidateResult:
    index: int
    name: str
    config: CompressionConfig
    origin: str
    status: str = "pending"  # baseline | passed | failed gate | failed requirement | error | skipped
    reasons: list[str] = field(default_factory=list)
    path: Path | None = None
    applied: dict[str, Any] | None = None
    gate: GateResult | None = None
    bytes: int | None = None
    latency: Latency | None = None
    seconds: float = 0.0
    chosen: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def ms(self, clock: str) -> float | None:
        return None if self.latency is None else self.latency.value(clock)

    def row(self, reference_bytes: int, reference_ms: float | None, clock: str = "wall") -> dict[str, Any]:
        return {
            "index": self.index,
            "candidate": self.name,
            "origin": self.origin,
            "method": self.config.method,
            "status": "chosen" if self.chosen else self.status,
            "reasons": list(self.reasons),
            "gate_passed": None if self.gate is None else self.gate.passed,
            "metric": None if self.gate is None else self.gate.metric,
            "metric_value": None if self.gate is None else self.gate.candidate,
            "checks": {} if self.gate is None else {check.name: check.value for check in self.gate.checks},
            "bytes": self.bytes,
            "size_ratio": None if self.bytes is None else self.bytes / reference_bytes,
            "latency_ms": self.ms(clock),
            "wall_ms": None if self.latency is None else self.latency.median_ms,
            "p90_ms": None if self.latency is None else self.latency.p90_ms,
            "cpu_ms": None if self.latency is None else self.latency.cpu_median_ms,
            "speedup": None if self.latency is None or not reference_ms else reference_ms / self.ms(clock),
            "applied": self.applied,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SearchResult:
    objective: str
    clock: str
    threads: int
    latency_shape: list[int]
    baseline: CandidateResult
    results: list[CandidateResult]
    chosen: CandidateResult | None
    seconds: float
    stopped_by_budget: bool
    cpu: str
    sensitivity: list[SensitivityReport] = field(default_factory=list)
    plot_path: Path | None = None
    markdown_path: Path | None = None
    requirements: dict[str, float] = field(default_factory=dict)

    @property
    def chosen_path(self) -> Path:
        assert self.chosen is not None and self.chosen.path is not None
        return self.chosen.path

    @property
    def chosen_gate(self) -> GateResult:
        assert self.chosen is not None and self.chosen.gate is not None
        return self.chosen.gate

    @property
    def applied(self) -> dict[str, Any]:
        """The manifest's ``compression``: what the chosen candidate applied, plus how it was chosen."""
        assert self.chosen is not None and self.chosen.applied is not None
        row = self.chosen.row(self.reference_bytes, self.reference_ms, self.clock)
        return {
            **self.chosen.applied,
            "selected_by": "auto",
            "auto": {
                "candidate": self.chosen.name,
                "objective": self.objective,
                "clock": self.clock,
                "threads": self.threads,
                "latency_shape": self.latency_shape,
                "latency_ms": row["latency_ms"],
                "reference_latency_ms": self.reference_ms,
                "speedup": row["speedup"],
                "size_ratio": row["size_ratio"],
                "tried": sum(1 for r in self.results if r.status != "skipped"),
                "passed": sum(1 for r in self.results if r.passed),
                "cpu": self.cpu,
            },
        }

    @property
    def reference_bytes(self) -> int:
        assert self.baseline.bytes is not None
        return self.baseline.bytes

    @property
    def reference_ms(self) -> float | None:
        return self.baseline.ms(self.clock)

    @property
    def table(self) -> list[dict[str, Any]]:
        return [r.row(self.reference_bytes, self.reference_ms, self.clock) for r in [self.baseline, *self.results]]

    def closest(self) -> CandidateResult | None:
        gated = [r for r in self.results if r.gate is not None]
        return max(gated, key=lambda r: gate_score(r.gate)) if gated else None

    def markdown(self, plot_name: str | None = PLOT_FILE) -> str:
        chosen = self.chosen
        lines = [
            '## Compression search (compression = "auto")',
            "",
            f"Objective: **{self.objective}**; latency = median of `session.run` at batch shape "
            f"{self.latency_shape}, {self.threads} intra-op thread(s), on {self.cpu}; speed-ups on the "
            f"{'calling thread CPU time' if self.clock == 'cpu' else 'wall clock'}. "
            f"{len([r for r in self.results if r.status != 'skipped'])} candidates tried in {self.seconds:.0f} s"
            + (" (stopped by the time budget)" if self.stopped_by_budget else "")
            + ".",
        ]
        if self.requirements:
            lines.append("Requirements besides the gate: " + ", ".join(f"{k} {v}" for k, v in self.requirements.items()) + ".")
        lines.append(
            f"Chosen: **{chosen.name}**." if chosen else "**No candidate passed: nothing was bundled.**"
        )
        lines += ["", *markdown_table(self.table), ""]
        if plot_name and self.plot_path is not None:
            lines += [f"![metric vs latency, marker area = size]({plot_name})", ""]
        for report in self.sensitivity:
            lines += [report.markdown()]
        return "\n".join(lines) + "\n"
