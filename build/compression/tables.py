"""The search's candidate table (``SearchResult.table`` rows) rendered for ``report.md``
(markdown) and for a terminal or an exception message (fixed-width text)."""

from __future__ import annotations

from typing import Any

from slimserve.build.units import format_bytes


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown_table(rows: list[dict[str, Any]], *, short: bool = False) -> list[str]:
    """One line per row; ``short`` keeps only the first reason of each row (+N more)."""
    check_names: list[str] = []
    for row in rows:
        check_names += [name for name in row["checks"] if name not in check_names]
    metric = next((row["metric"] for row in rows if row["metric"]), "metric")
    header = ["#", "candidate", "result", metric, *check_names, "size", "vs fp32", "median ms", "p90 ms", "CPU ms", "speed-up"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        reasons = row["reasons"]
        if short and len(reasons) > 1:
            reasons = [f"{reasons[0]} (+{len(reasons) - 1} more)"]
        result = row["status"] + (f": {'; '.join(reasons)}" if reasons else "")
        size = "" if row["bytes"] is None else format_bytes(row["bytes"], 2)
        cells = [
            str(row["index"]),
            f"**{row['candidate']}**" if row["status"] == "chosen" else row["candidate"],
            result,
            _fmt(row["metric_value"], ".4f"),
            *[_fmt(row["checks"].get(name), ".4f") for name in check_names],
            size,
            _fmt(row["size_ratio"], ".1%"),
            _fmt(row["wall_ms"], ".4g"),
            _fmt(row["p90_ms"], ".4g"),
            _fmt(row["cpu_ms"], ".4g"),
            "" if row["speedup"] is None else f"{row['speedup']:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def text_table(rows: list[dict[str, Any]]) -> str:
    """The table for a terminal / exception message: fixed-width columns."""
    lines = markdown_table(rows, short=True)
    cells = [[cell.strip().replace("**", "") for cell in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)
