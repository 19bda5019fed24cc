"""rich progress bars on stderr; on a non-terminal, one line per finished stage instead."""

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
            started = time.perf_counter()
            done = [0]
            yield lambda n=1: done.__setitem__(0, done[0] + n)
            count = f" ({done[0]}/{total})" if total else ""
            self.console.print(f"[dim]✓ {description}{count} in {time.perf_counter() - started:.1f} s[/dim]")
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
