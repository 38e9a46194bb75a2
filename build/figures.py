"""matplotlib for the PNGs the build writes (report.png, search.png, the benchmark plots): the
Agg backend (no display needed on CI or over SSH) and one way to save a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, *, dpi: int = 110) -> Path:
    """Lay out, write ``path`` (PNG) and close ``figure`` (pyplot keeps every open figure)."""
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return path
