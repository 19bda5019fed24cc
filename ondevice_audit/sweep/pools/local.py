"""``--executor local``: a process pool on this machine.

Workers are spawned, not forked (TensorFlow is not fork-safe), and keep TensorFlow out of the sweep's own
process. A worker that dies (a converter abort, the OOM killer) breaks the whole pool: its running tasks fail
and the scheduler opens a fresh pool for the rest.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ondevice_audit.errors import UsageError
from ondevice_audit.sweep.pools.interface import TaskOutcome, TaskPool
from ondevice_audit.sweep.stages import SweepContext, Task, describe_error, execute, init_worker

__all__ = ["LocalPool"]


class LocalPool(TaskPool):
    name = "local"
    survives_worker_loss = False

    @classmethod
    def check(cls, address: str | None) -> None:
        if address is not None:
            raise UsageError("--address is for --executor ray; the local executor runs on this machine")

    def __init__(self, jobs: int, context: SweepContext, address: str | None):
        self._pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(context,),
        )

    def submit(self, task: Task) -> Future[TaskOutcome]:
        return self._pool.submit(execute, task)

    def worker_loss(self, error: BaseException) -> str | None:
        if isinstance(error, BrokenProcessPool):
            return f"the worker process running it died ({describe_error(error)})"
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
