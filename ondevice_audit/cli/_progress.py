"""rich progress bars on stderr; on a non-terminal, one line per finished stage instead, and for a long stage
a line every ``LOG_EVERY_S`` seconds with how far it is and the time left (CI logs show it is alive)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ondevice_audit.progress import Advance

__all__ = ["RichProgress", "stderr"]

stderr = Console(stderr=True)
LOG_EVERY_S = 30.0


class RichProgress:
    def __init__(self, console: Console = stderr, quiet: bool = False):
        self.console = console
        self.quiet = quiet

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        if self.quiet:
            yield lambda n=1: None
            return
        if not self.console.is_terminal:
            log = _LogLines(self.console, description, total)
            yield log.advance
            count = f" ({log.done}/{total})" if total else ""
            self.console.print(f"[dim]✓ {description}{count} in {time.perf_counter() - log.started:.1f} s[/dim]")
            return
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task_id = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task_id, n)

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]{message}[/yellow]", highlight=False)


class _LogLines:
    """Counts a stage's progress; every ``LOG_EVERY_S`` seconds prints how far it is and, with a total, the time left."""

    def __init__(self, console: Console, description: str, total: int | None):
        self.console, self.description, self.total = console, description, total
        self.started = self.last = time.perf_counter()
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < LOG_EVERY_S:
            return
        self.last = now
        elapsed = now - self.started
        line = f"… {self.description}: {self.done}" + (f"/{self.total}" if self.total else "")
        line += f" after {_duration(elapsed)}"
        if self.total and 0 < self.done < self.total:
            line += f", about {_duration(elapsed * (self.total - self.done) / self.done)} left"
        self.console.print(f"[dim]{line}[/dim]", highlight=False)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
