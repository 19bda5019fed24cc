"""The stages of a sweep cell, one module each, and the plan that lets cells share them.

``plan.py`` turns the matrix into tasks; each stage module (``features``, ``train``, ``prune``, ``export``,
``infer``, ``score``) holds its typed settings (a frozen dataclass whose cache key is derived from it, see
``base.py``) and the ``run`` that computes its cache entry. A task reads the entries of the tasks it depends on
and writes its own, so any process can run any task whose inputs exist: that is what lets ``--jobs`` run tasks
in a process pool (or on Ray), and ``--resume`` pick up after a crash.

Everything that feeds a result is seeded (training, pruning, the quantisation calibration subset, the
resampling seed), so a task gives the same entry whichever process runs it, when.

Every entry records what it cost in ``timing.json`` (wall and CPU seconds of ``run``, when it began and ended,
the worker's pid). A
worker imports TensorFlow once, before its first task that needs it (``StageSettings.uses_tensorflow``), timed
apart as ``tensorflow_import_seconds``: the import is the worker's start-up, not that task's work, and the worker
keeps it for every later task. ``benchmarks/run.py --only sweep-profile`` adds these up per stage.

A new factor that changes a stage is a field of that stage's settings (and of ``Cell``/``Factor`` in
``sweep/matrix.py``): its key then follows.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from ondevice_audit.errors import OndeviceAuditError
from ondevice_audit.sweep.cache import Cache
from ondevice_audit.sweep.stages.base import (
    SweepContext,
    TaskContext,
    init_worker,
    read_json,
    worker_context,
    write_json,
)
from ondevice_audit.sweep.stages.plan import CellPlan, Plan, Task, build_plan, prepare_context

__all__ = [
    "STAGES",
    "TIMING_FILE",
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
TIMING_FILE = "timing.json"


def execute(task: Task) -> tuple[str, str | None, str]:
    """In a worker: run ``task`` unless its entry exists; return (key, error message or None, traceback)."""
    context = worker_context()
    try:
        cache = Cache(context.cache_root)
        if not cache.has(task.stage, task.key):
            began = time.time()
            imported = _import_tensorflow() if task.settings.uses_tensorflow else 0.0
            with cache.writing(task.stage, task.key) as entry:
                started, cpu = time.perf_counter(), time.process_time()
                task.settings.run(TaskContext(context, cache, task.deps), entry)
                seconds = {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                           "tensorflow_import_seconds": imported, "began_at": began}  # fmt: skip
                _write_timing(entry, task, seconds)
        return task.key, None, ""
    except Exception as exc:  # a task's failure is recorded against its cells; the sweep goes on
        return task.key, describe_error(exc), traceback.format_exc()


def _import_tensorflow() -> float:
    """Seconds this worker spent importing TensorFlow now; 0 when an earlier task of the worker did."""
    if "tf_keras" in sys.modules:
        return 0.0
    from ondevice_audit import _tensorflow

    started = time.perf_counter()
    _tensorflow.keras()
    return time.perf_counter() - started


def _write_timing(entry: Path, task: Task, seconds: dict[str, float]) -> None:
    """What the task cost; ``began_at``/``ended_at`` (epoch seconds) place it on the sweep's time line."""
    timing = {"stage": task.stage, "kind": type(task.settings).__name__, **seconds, "ended_at": time.time(),
              "pid": os.getpid()}  # fmt: skip
    write_json(entry / TIMING_FILE, timing)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OndeviceAuditError):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
