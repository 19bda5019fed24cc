"""The stages of a sweep cell, one module each, and the plan that lets cells share them.

``plan.py`` turns the matrix into tasks; each stage module (``features``, ``train``, ``prune``, ``export``,
``infer``, ``score``) holds its typed settings (a frozen dataclass whose cache key is derived from it, see
``base.py``) and the ``run`` that computes its cache entry. A task reads the entries of the tasks it depends on
and writes its own, so any process can run any task whose inputs exist: that is what lets ``--jobs`` run tasks
in a process pool (or on Ray), and ``--resume`` pick up after a crash.

Everything that feeds a result is seeded (training, pruning, the quantisation calibration subset, the
resampling seed), so a task gives the same entry whichever process runs it, when.

A new factor that changes a stage is a field of that stage's settings (and of ``Cell``/``Factor`` in
``sweep/matrix.py``): its key then follows.
"""

from __future__ import annotations

import traceback

from ondevice_audit.errors import OndeviceAuditError
from ondevice_audit.sweep.cache import Cache
from ondevice_audit.sweep.stages.base import SweepContext, TaskContext, init_worker, read_json, worker_context
from ondevice_audit.sweep.stages.plan import CellPlan, Plan, Task, build_plan, prepare_context

__all__ = [
    "STAGES",
    "CellPlan",
    "Plan",
    "SweepContext",
    "Task",
    "build_plan",
    "describe_error",
    "execute",
    "init_worker",
    "prepare_context",
    "read_json",
]

STAGES = ("features", "train", "prune", "export", "infer", "score")


def execute(task: Task) -> tuple[str, str | None, str]:
    """In a worker: run ``task`` unless its entry exists; return (key, error message or None, traceback)."""
    context = worker_context()
    try:
        cache = Cache(context.cache_root)
        if not cache.has(task.stage, task.key):
            with cache.writing(task.stage, task.key) as entry:
                task.settings.run(TaskContext(context, cache, task.deps), entry)
        return task.key, None, ""
    except Exception as exc:  # a task's failure is recorded against its cells; the sweep goes on
        return task.key, describe_error(exc), traceback.format_exc()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OndeviceAuditError):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
