"""What the sweep's scheduler needs from an executor: run one ready task somewhere, and say when a worker died.

The scheduler (``executor._Run``) owns the dependency order, failure propagation, the cache and ``--resume``: it
submits a task only when every task it reads from is in the cache, so a pool runs independent tasks and knows
nothing of the plan. ``submit`` returns a ``concurrent.futures.Future`` so one ``wait(FIRST_COMPLETED)`` serves
every executor. A task's own errors come back in its outcome; an exception from the future means the worker
running it was lost, which ``worker_loss`` puts into words.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from typing import ClassVar

from ondevice_audit.sweep.stages import SweepContext, Task

__all__ = ["TaskOutcome", "TaskPool"]

TaskOutcome = tuple[str, str | None, str]
"""What ``stages.execute`` returns: (task key, error message or None, traceback)."""


class TaskPool(ABC):
    name: ClassVar[str]
    survives_worker_loss: ClassVar[bool]
    """True if the other running tasks go on when a worker dies (Ray); False if they are lost with it and the
    scheduler must open a fresh pool (a process pool)."""

    @classmethod
    @abstractmethod
    def check(cls, address: str | None) -> None:
        """Refuse, before any work, what this executor cannot do (a missing package, an option it ignores)."""

    @abstractmethod
    def __init__(self, jobs: int, context: SweepContext, address: str | None):
        """Start the workers (at most ``jobs`` tasks run at once); ``context`` goes to each worker once."""

    @abstractmethod
    def submit(self, task: Task) -> Future[TaskOutcome]:
        """Run ``stages.execute(task)`` in a worker that sees ``context.cache_root``."""

    @abstractmethod
    def worker_loss(self, error: BaseException) -> str | None:
        """Why a task's future raised ``error``, in words, if its worker was lost; None if ``error`` is not a
        loss of this pool's making (the scheduler then lets it propagate)."""

    @abstractmethod
    def close(self) -> None:
        """Cancel what is still queued and release the workers."""
