"""The PNG plots, drawn from a fake results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimserve.build.bench.plots import write_plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_one_plot_per_section_with_figures(fake_results: dict[str, Any], tmp_path: Path) -> None:
    assert write_plots(fake_results, tmp_path) == ["latency.png", "cold_start.png", "size.png", "load.png"]
    assert all((tmp_path / name).read_bytes()[:8] == PNG for name in ("latency.png", "cold_start.png", "size.png", "load.png"))


def test_sections_that_failed_or_were_skipped_are_not_drawn(fake_results: dict[str, Any], tmp_path: Path) -> None:
    example = fake_results["examples"]["minilm"]
    example["cold_start"] = {"skipped": "no Python 3.12"}
    example["load"] = {"error": "RuntimeError: boom"}
    example["speed"] = {"cells": []}
    assert write_plots(fake_results, tmp_path) == ["size.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["size.png"]
