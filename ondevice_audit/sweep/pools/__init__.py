"""Where a sweep's tasks run: one ``TaskPool`` interface (``interface.py``), one module per executor.

``local`` is a process pool on this machine (``--jobs N`` processes); ``ray`` runs each task as a Ray task on a
local Ray instance or an existing cluster (``--jobs N`` tasks at once). Add an executor (Dask, say) as a module
here with a ``TaskPool`` subclass and an entry in ``EXECUTORS`` and ``pool_type``; the scheduling in
``sweep/executor.py`` stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ondevice_audit.errors import UsageError
from ondevice_audit.sweep.pools.interface import TaskOutcome, TaskPool
from ondevice_audit.sweep.stages import SweepContext

__all__ = ["EXECUTORS", "TaskOutcome", "TaskPool", "open_pool", "pool_type"]

EXECUTORS = ("local", "ray")


def pool_type(executor: str) -> type[TaskPool]:
    """The pool class of ``executor``, imported only when chosen (Ray is an optional extra)."""
    if executor == "local":
        from ondevice_audit.sweep.pools.local import LocalPool

        return LocalPool
    if executor == "ray":
        from ondevice_audit.sweep.pools.ray import RayPool

        return RayPool
    raise UsageError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")


@contextmanager
def open_pool(executor: str, jobs: int, context: SweepContext, address: str | None) -> Iterator[TaskPool]:
    pool = pool_type(executor)(jobs, context, address)
    try:
        yield pool
    finally:
        pool.close()
