"""Where a sweep's tasks run: one ``TaskPool`` interface (``interface.py``), one module per executor.

``local`` is a process pool on this machine (``--jobs N`` processes); ``ray`` runs each task as a Ray task on a
local Ray instance or an existing cluster (``--jobs N`` tasks at once). Add an executor (Dask, say) as a module
here with a ``TaskPool`` subclass and a ``register`` line below; the scheduling in ``sweep/executor.py`` stays
as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ondevice_audit.registry import Registry
from ondevice_audit.sweep.pools.interface import TaskOutcome, TaskPool
from ondevice_audit.sweep.stages import SweepContext

__all__ = ["EXECUTORS", "TaskOutcome", "TaskPool", "open_pool", "pool_type"]

POOLS: Registry[type[TaskPool]] = Registry("executor")
POOLS.register("local", "ondevice_audit.sweep.pools.local:LocalPool", summary="a process pool on this machine")
POOLS.register("ray", "ondevice_audit.sweep.pools.ray:RayPool", extra="ray", summary="Ray tasks, local or a cluster")
EXECUTORS = POOLS.names()


def pool_type(executor: str) -> type[TaskPool]:
    """The pool class of ``executor``, imported only when chosen (Ray is an optional extra)."""
    return POOLS.load(executor)


@contextmanager
def open_pool(executor: str, jobs: int, context: SweepContext, address: str | None) -> Iterator[TaskPool]:
    pool = pool_type(executor)(jobs, context, address)
    try:
        yield pool
    finally:
        pool.close()
