"""Step-by-step progress for long commands: a spinner while a step runs, a line with its
duration when it ends, a clear mark when it fails."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.markup import escape


class Steps:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.timings: dict[str, float] = {}

    def log(self, message: str) -> None:
        self.console.print(f"    [dim]{escape(message)}[/dim]", highlight=False)

    @contextmanager
    def step(self, name: str, description: str) -> Iterator[None]:
        description = escape(description)
        started = time.perf_counter()
        try:
            with self.console.status(f"[bold]{name}[/bold] {description}…"):
                yield
        except BaseException:
            self.console.print(f"[red]✗[/red] [bold]{name}[/bold] {description} (failed after {time.perf_counter() - started:.1f} s)")
            raise
        elapsed = time.perf_counter() - started
        self.timings[name] = elapsed
        self.console.print(f"[green]✓[/green] [bold]{name}[/bold] {description} [dim]{elapsed:.1f} s[/dim]", highlight=False)
