"""The build's matplotlib helpers: headless backend, PNG written, figure closed."""

from __future__ import annotations

from pathlib import Path

from slimserve.build.figures import pyplot, save_figure


def test_save_figure_writes_a_png_and_closes_the_figure(tmp_path: Path) -> None:
    plt = pyplot()
    assert plt.get_backend().lower() == "agg"
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    open_before = len(plt.get_fignums())
    path = save_figure(figure, tmp_path / "plot.png")
    assert path == tmp_path / "plot.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(plt.get_fignums()) == open_before - 1
