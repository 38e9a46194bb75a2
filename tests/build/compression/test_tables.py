"""The candidate table as report.md shows it (markdown) and as a failed build prints it (text)."""

from __future__ import annotations

from typing import Any

from slimserve.build.compression.tables import markdown_table, text_table


def _row(index: int, name: str, status: str, **values: Any) -> dict[str, Any]:
    row = {
        "index": index, "candidate": name, "status": status, "reasons": [], "metric": "accuracy",
        "metric_value": None, "checks": {}, "bytes": None, "size_ratio": None, "wall_ms": None, "p90_ms": None,
        "cpu_ms": None, "speedup": None,
    }
    return row | values


ROWS = [
    _row(0, "fp32 (reference, not eligible)", "baseline", metric_value=0.97, checks={"accuracy loss": 0.0},
         bytes=2 * 1048576, size_ratio=1.0, wall_ms=0.5, p90_ms=0.6, cpu_ms=0.45, speedup=1.0),
    _row(1, "dynamic s8 per-channel", "chosen", metric_value=0.9694, checks={"accuracy loss": 0.0006},
         bytes=30 * 1024, size_ratio=0.0146, wall_ms=0.25, p90_ms=0.3, cpu_ms=0.2, speedup=2.25),
    _row(2, "fp16", "failed gate", reasons=["accuracy loss 0.02 (needs <= 0.01)", "size 50.0% of fp32 (max 30%)"],
         checks={"accuracy loss": 0.02, "top-1 agreement": 0.95}),
    _row(3, "static MinMax per-channel", "skipped", reasons=["time budget"], metric=None),
]


def test_markdown_table_has_a_column_per_check_and_marks_the_choice() -> None:
    lines = markdown_table(ROWS)
    assert lines[0] == (
        "| # | candidate | result | accuracy | accuracy loss | top-1 agreement | size | vs fp32 | median ms | p90 ms | CPU ms | speed-up |"
    )
    assert lines[1] == "|" + "---|" * 12
    assert lines[2] == "| 0 | fp32 (reference, not eligible) | baseline | 0.9700 | 0.0000 |  | 2.00 MiB | 100.0% | 0.5 | 0.6 | 0.45 | 1.00x |"
    assert lines[3].startswith("| 1 | **dynamic s8 per-channel** | chosen | 0.9694 | 0.0006 |  | 30.00 KiB | 1.5% | 0.25 |")
    assert lines[4] == (
        "| 2 | fp16 | failed gate: accuracy loss 0.02 (needs <= 0.01); size 50.0% of fp32 (max 30%) |  | 0.0200 | 0.9500 |  |  |  |  |  |  |"
    )
    assert lines[5].startswith("| 3 | static MinMax per-channel | skipped: time budget |")


def test_text_table_is_fixed_width_with_the_first_reason_only() -> None:
    lines = text_table(ROWS).splitlines()
    assert len(lines) == 5 and lines[0].split()[:3] == ["#", "candidate", "result"]
    assert "**" not in text_table(ROWS)
    assert "failed gate: accuracy loss 0.02 (needs <= 0.01) (+1 more)" in lines[3]
    starts = {line.index(cell) for line, cell in zip(lines[1:], ["fp32", "dynamic", "fp16", "static"])}
    assert len(starts) == 1  # the candidate column lines up
