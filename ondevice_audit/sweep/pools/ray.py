"""``--executor ray``: every sweep task a Ray task, on a local Ray instance or an existing cluster.

Ray is not told the dependencies: the scheduler submits a task only once every task it reads from is in the
cache, so the order (features, base models, pruning, export, inference, scores), failure propagation, cache and
``--resume`` are the local executor's, and so are the results. Without ``--address`` a local instance with
``--jobs`` CPUs is started and shut down afterwards; with one (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) the
sweep connects to that cluster, whose nodes need ondevice-audit installed and must see the dataset. A Ray connection this process already
has (a notebook, a test) is used as it is and left open.

The context goes into the object store once; each worker process reads it on its first task of the sweep, as
``init_worker`` does for a process pool. Workers write the cache directly, so they must see the cache folder at
the same path: on several machines, ``--cache`` on a shared filesystem. The driver leaves a marker file in it,
and a worker that cannot see the marker refuses its first task, which stops the sweep with one line instead of
computing entries nobody reads. Tasks are not retried: as with a process pool, a worker that dies fails its
task, the sweep goes on, and ``--resume`` retries it.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import uuid
import warnings
from concurrent.futures import Future
from typing import Any

from ondevice_audit.errors import PipelineError, UsageError
from ondevice_audit.sweep.pools.interface import TaskOutcome, TaskPool
from ondevice_audit.sweep.stages import SweepContext, Task, describe_error, execute, init_worker

__all__ = ["INSTALL_HINT", "CacheNotShared", "RayPool"]

INSTALL_HINT = "pip install 'ondevice-audit[ray]'"
_MARKER_PREFIX = ".ray-sweep-"


class CacheNotShared(UsageError):
    """A Ray worker does not see the sweep's cache folder."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


class RayPool(TaskPool):
    name = "ray"
    survives_worker_loss = True

    @classmethod
    def check(cls, address: str | None) -> None:
        _ray()

    def __init__(self, jobs: int, context: SweepContext, address: str | None):
        ray = self._ray = _ray()
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            _connect(ray, jobs, address)
        self._running: dict[Future[TaskOutcome], Any] = {}
        context = dataclasses.replace(context, cache_root=context.cache_root.absolute())  # workers' cwd may differ
        self._marker = context.cache_root / f"{_MARKER_PREFIX}{uuid.uuid4().hex}"
        try:
            self._marker.write_text("a sweep on Ray is running; its workers check that they see this file\n")
            self._context = [ray.put(context)]  # in a list, so tasks get the reference and fetch it once
            self._remote = ray.remote(num_cpus=1, max_retries=0)(_run_in_worker)
        except BaseException:
            self.close()
            raise

    def submit(self, task: Task) -> Future[TaskOutcome]:
        reference = self._remote.remote(self._context, self._marker.name, task)
        future = reference.future()
        self._running[future] = reference
        future.add_done_callback(lambda done: self._running.pop(done, None))
        return future

    def worker_loss(self, error: BaseException) -> str | None:
        cause = getattr(error, "cause", error)
        if isinstance(cause, CacheNotShared):
            raise CacheNotShared(str(cause))
        if isinstance(error, self._ray.exceptions.RayError):
            return f"the Ray worker running it failed ({describe_error(error)})"
        return None

    def close(self) -> None:
        for reference in list(self._running.values()):
            self._ray.cancel(reference, force=True)
        self._marker.unlink(missing_ok=True)
        if self._owns_connection:
            self._ray.shutdown()


def _connect(ray: Any, jobs: int, address: str | None) -> None:
    """A new local instance of ``jobs`` CPUs, or the cluster at ``address``; Ray's errors become one line."""
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        with warnings.catch_warnings():  # Ray's client warns, then raises what the one line below says
            warnings.simplefilter("ignore")
            if address is None:
                ray.init(address="local", num_cpus=jobs, **quiet)
            else:
                ray.init(address=address, **quiet)
    except Exception as exc:  # Ray raises ConnectionError, ValueError or RuntimeError for an unusable address
        if address is None:
            raise PipelineError(f"could not start a local Ray instance: {describe_error(exc)}") from exc
        raise UsageError(f"could not connect to Ray at --address {address}: {describe_error(exc)}") from exc


_SWEEP_SEEN: list[str] = []
"""The marker of the sweep this worker process has its context for."""


def _run_in_worker(context: list[Any], marker: str, task: Task) -> TaskOutcome:
    """In a Ray worker: take the sweep's context on its first task (checking it sees the cache), then run."""
    if _SWEEP_SEEN != [marker]:
        import ray

        loaded: SweepContext = ray.get(context[0])
        if not (loaded.cache_root / marker).is_file():
            raise CacheNotShared(
                f"a Ray worker on {socket.gethostname()} cannot see the cache folder {loaded.cache_root}; "
                "a cluster of several machines needs --cache on a filesystem every node shares"
            )
        init_worker(loaded)  # its parent watch sees the raylet, which Ray ends with the job anyway
        _SWEEP_SEEN[:] = [marker]
    return execute(task)
