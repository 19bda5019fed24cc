"""The consoles every command prints through, ``--quiet``, and progress.

Progress: rich bars on stderr; on a non-terminal (a CI log), one line per finished stage instead, and for a long
stage a line every ``LOG_EVERY_S`` seconds with how far it is and the time left (CI logs show it is alive).
Tables print through ``ReadableConsole``, so in an 80-column log or a narrow terminal a wide table becomes one
record per row rather than cut numbers and group names. ``--quiet`` (on every command) silences progress and
notes on ``stderr``; ``errors`` always prints, and the report and gate print only their verdict.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
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
from ondevice_audit.report.table import ReadableConsole

__all__ = ["Quiet", "RichProgress", "errors", "is_quiet", "set_quiet", "stderr", "stdout"]

stderr = ReadableConsole(stderr=True)
"""Progress, notes and side tables: silent under ``--quiet``."""
errors = ReadableConsole(stderr=True)
"""Errors and verdicts: always shown."""


def stdout(**kwargs: Any) -> Console:
    """A console on standard output for a command's result (made per call: ``COLUMNS`` is read when it is)."""
    return ReadableConsole(**kwargs)


def set_quiet(value: bool) -> None:
    stderr.quiet = value


def is_quiet() -> bool:
    return stderr.quiet


def _quiet_callback(value: bool) -> bool:
    if value:
        set_quiet(True)
    return value


Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        callback=_quiet_callback,
        help="Print only errors and the final verdict: no progress, notes or full tables.",
    ),
]
"""Every command takes it; its callback quiets ``stderr`` before the command runs."""
LOG_EVERY_S = 30.0


class RichProgress:
    def __init__(self, console: Console = stderr, quiet: bool | None = None):
        """``quiet`` None: as ``--quiet`` says."""
        self.console = console
        self.quiet = is_quiet() if quiet is None else quiet

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
