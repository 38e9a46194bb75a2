"""BENCHMARKS.md from a fake results.json: every section, and the host beside every speed figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimserve.build.bench.report.page import render_markdown
from slimserve.build.bench.report.targets import evaluate_targets


def test_markdown_renders_every_section_from_the_results(fake_results: dict[str, Any], tmp_path: Path) -> None:
    results = fake_results
    results["targets"] = evaluate_targets(results)
    results["plots"] = ["latency.png"]
    page = render_markdown(results, plots_dir=tmp_path / "bench", page=tmp_path / "BENCHMARKS.md")
    for heading in ("## Machine", "## Targets", "### 1. Model speed", "### 2. Size", "### 3. Cold start",
                    "### 4. Warm request overhead", "### 5. Load", "### 6. Warm explain latency", "## JSON vs binary",
                    "## Plots"):
        assert heading in page
    assert "| shapley-sampling (256 samples) | 14 | 262 | 61.5 | 70.2 | 30 | 1e-16 |" in page
    assert "Test CPU" in page and "❌ missed" in page and "✅ met" in page
    assert "| 1 | batch 1 × 16 tokens | 12.0 / 13.2 | 4.00 / 4.40 | 2.00 / 2.20 | 2.00× | 6.00× |" in page
    assert "![latency](bench/latency.png)" in page


def _section(page: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    rest = page.split(heading, 1)[1]
    return rest.split("\n#", 1)[0]


TIMED_HEADINGS = (
    "### 1. Model speed",
    "### 3. Cold start",
    "### 4. Warm request overhead",
    "### 5. Load",
    "### 6. Warm explain latency",
    "## JSON vs binary",
)


def test_every_speed_table_and_the_header_name_the_host_instruction_sets(fake_results: dict[str, Any]) -> None:
    vnni = ["avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"]
    fake_results["machine"]["cpu"].update(model="Xeon Test", int8_flags=vnni)
    example = fake_results["examples"]["minilm"]
    for section in (example["speed"], example["cold_start"], example["warm"], example["load"], example["explain"],
                    fake_results["json_vs_binary"]):
        section["machine"] = {"cpu": "Xeon Test", "architecture": "x86_64", "int8_flags": vnni}
    page = render_markdown(fake_results)

    header = page.split("## Machine", 1)[0]
    assert "**Host**: Xeon Test (x86_64), int8 instruction sets: avx2, avx512f, avx512_vnni, amx_tile, amx_int8." in header
    assert "int8 instruction sets: avx2, avx512f, avx512_vnni, amx_tile, amx_int8" in _section(page, "## Machine")
    line = "Measured on Xeon Test (x86_64), int8 instruction sets: avx2, avx512f, avx512_vnni, amx_tile, amx_int8."
    for heading in TIMED_HEADINGS:
        assert line in _section(page, heading), heading
    assert "Measured on" not in _section(page, "### 2. Size")  # bytes do not depend on the CPU


def test_each_table_states_the_host_its_own_figures_were_measured_on(fake_results: dict[str, Any]) -> None:
    fake_results["examples"]["minilm"]["load"]["machine"] = {"cpu": "Graviton Test", "architecture": "aarch64",
                                                              "int8_flags": ["asimddp", "i8mm"]}
    page = render_markdown(fake_results)
    assert "Measured on Graviton Test (aarch64), int8 instruction sets: asimddp, i8mm." in _section(page, "### 5. Load")
    assert "Measured on Test CPU (x86_64), int8 instruction sets: avx2." in _section(page, "### 4. Warm request overhead")


def test_a_section_without_figures_names_no_host_and_no_flags_are_said_plainly(fake_results: dict[str, Any]) -> None:
    fake_results["machine"]["cpu"]["int8_flags"] = []
    fake_results["examples"]["minilm"]["warm"] = {"error": "RuntimeError: boom"}
    page = render_markdown(fake_results)
    assert "int8 instruction sets: none of avx2/avx512f/avx512_vnni/avx_vnni/amx_tile/amx_int8/asimddp/i8mm." in page
    warm = _section(page, "### 4. Warm request overhead")
    assert "_not measured: RuntimeError: boom_" in warm and "Measured on" not in warm
