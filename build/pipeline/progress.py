"""Step-by-step progress for long commands: a spinner while a step runs, a line with its
duration when it ends, a clear mark when it fails.

A step fails when its block raises, or when the block calls ``fail()`` on the handle it was
given (the gate's step measures and returns normally, yet the build must not show a tick for
it): the line then starts with ✗ and says why, never ✓.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.markup import escape


class StepHandle:
    """What a step's block may say about its outcome besides raising."""

    def __init__(self) -> None:
        self.failure: str | None = None

    def fail(self, reason: str) -> None:
        """Mark the step failed (its line gets ✗ and ``reason``) without raising."""
        self.failure = reason


class Steps:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.timings: dict[str, float] = {}

    def log(self, message: str) -> None:
        self.console.print(f"    [dim]{escape(message)}[/dim]", highlight=False)

    @contextmanager
    def step(self, name: str, description: str) -> Iterator[StepHandle]:
        description = escape(description)
        handle = StepHandle()
        started = time.perf_counter()
        try:
            with self.console.status(f"[bold]{name}[/bold] {description}…"):
                yield handle
        except BaseException:
            self._failed(name, description, f"failed after {time.perf_counter() - started:.1f} s")
            raise
        elapsed = time.perf_counter() - started
        self.timings[name] = elapsed
        if handle.failure is not None:
            self._failed(name, description, f"{escape(handle.failure)}, {elapsed:.1f} s")
            return
        self.console.print(f"[green]✓[/green] [bold]{name}[/bold] {description} [dim]{elapsed:.1f} s[/dim]", highlight=False)

    def _failed(self, name: str, description: str, why: str) -> None:
        self.console.print(f"[red]✗[/red] [bold]{name}[/bold] {description} ({why})", highlight=False)
