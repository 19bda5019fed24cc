"""Running a sweep: the shared work order, a pool of workers, and the sweep folder.

Tasks run in the order of the first cell that needs them, so cells finish one after another and a long
sweep yields results early. A task is submitted only when every task it reads from is done, so the pools of
``sweep/pools`` need not know the dependencies: spawned processes on this machine (``--executor local``,
``--jobs N`` of them, one by default; spawned because TensorFlow is not fork-safe) or Ray tasks (``--executor
ray``). Either keeps TensorFlow out of this process and makes a crash survivable: a converter that aborts or a
worker killed for memory fails its tasks, and the sweep goes on (a broken process pool is replaced). A task's
failure fails the cells that depend on it, with its message. The sweep folder holds ``sweep.json`` (what was
asked), one folder per cell, ``results.csv`` (one row per cell) and the analysis; nothing in it is needed to
resume, which reads the cache.

With a microcontroller budget (``[deployment]`` in the matrix), every finished cell's file is checked on TFLM
(``targets.mcu.fits``) as its row is written: ``arena_bytes``, ``flash_bytes``, ``fits_mcu``, ``mcu_reason``.
It runs here, not in a cached stage, because it is quick and depends on the budget, not on the model alone.
"""

from __future__ import annotations

import importlib.util
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ondevice_audit.errors import OndeviceAuditError, UsageError
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.report.document import to_json
from ondevice_audit.sweep.analysis import Analysis, analyse
from ondevice_audit.sweep.cache import Cache, atomic_write_bytes, atomic_write_text, copy_file, default_cache_dir
from ondevice_audit.sweep.folder import CellFolder, SweepFolder
from ondevice_audit.sweep.matrix import Matrix
from ondevice_audit.sweep.mitigation import mitigation_effects
from ondevice_audit.sweep.pools import TaskPool, open_pool, pool_type
from ondevice_audit.sweep.stages import STAGES, Plan, SweepContext, build_plan, prepare_context, read_json
from ondevice_audit.targets.mcu import MCUBudget, fits

__all__ = ["SweepResult", "SweepStatus", "run_sweep"]

_FORMAT = 1
SECONDS_PER_TASK = {"features": 2.0, "train": 12.0, "prune": 8.0, "export": 3.5, "infer": 0.5, "score": 0.7}
"""Rough wall time of a task of each stage on the bundled demo data (2-core machine, one job): for the size
estimate printed before a sweep starts. Larger data takes longer in proportion."""


@dataclass(frozen=True)
class SweepStatus:
    total: int
    done: int
    """Cells finished, from the cache or computed."""
    cached: int
    """Of ``done``, cells whose results were already in the cache."""
    running: int
    failed: int
    seconds_left: float | None
    """From the pace of the cells computed so far; None before the first one."""
    last: str | None = None
    """The latest finished cell, in words."""


@dataclass
class SweepResult:
    out: Path
    results: pd.DataFrame
    analysis: Analysis
    cache: dict[str, dict[str, int]]
    """Stage -> number of tasks: ``hits`` found in the cache, ``misses`` computed, ``failed`` failed or not
    run because an input failed."""
    seconds: float
    parquet: bool
    """Whether results.parquet was written (needs pyarrow)."""


def run_sweep(
    matrix: Matrix,
    out: Path,
    *,
    cache_dir: Path | None = None,
    resume: bool = False,
    jobs: int = 1,
    within: float = 1.0,
    progress: Progress | None = None,
    on_status: Callable[[SweepStatus], None] | None = None,
    executor: str = "local",
    address: str | None = None,
    max_cells: int | None = None,
) -> SweepResult:
    """Run every cell of ``matrix`` into ``out`` (see the module docstring); ``within`` is in percent.
    ``executor`` names a pool in ``sweep/pools`` (``local``, ``ray``); ``address`` is a Ray cluster's.
    A matrix of more cells than ``max_cells`` (raised by the matrix's own ``max_cells``) is refused before any
    work; None runs any size."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    pool_type(executor).check(address)  # a missing extra or a stray option is refused before any work
    if within < 0:
        raise UsageError(f"--within must be a percentage of 0 or more, got {within}")
    started = time.perf_counter()
    progress = progress or NullProgress()
    cache = Cache(cache_dir or default_cache_dir())
    folder = SweepFolder(out)
    _check_out(folder, matrix, resume)
    context = prepare_context(matrix, cache.root)
    plan = build_plan(context, cache)
    _check_size(matrix, plan, cache, max_cells, progress)
    # Only now, with the matrix and data checked, is anything written: a refused sweep leaves no trace.
    folder.path.mkdir(parents=True, exist_ok=True)
    _write_state(folder, matrix, cache.root, "running")
    cache.root.mkdir(parents=True, exist_ok=True)
    cache.remove_stale()
    budget = matrix.deployment.budget()
    run = _Run(matrix, plan, cache, folder, progress, on_status, budget=budget)
    run.execute(jobs, context, executor, address)
    results = _results_frame(matrix, run.rows)
    scoring = matrix.scoring_task(context.classes)
    if matrix.model is not None:  # every cell against the user's model as given
        from ondevice_audit.sweep.baseline import compare_with_baseline

        results = compare_with_baseline(results, folder, matrix.data, scoring)
    parquet = _write_results(folder, results)
    factors = [f.name for f in matrix.factors]
    effects = mitigation_effects(
        results, factors, lambda cell: pd.read_csv(folder.cell(cell).predictions, dtype=str), matrix.data, scoring
    )
    analysis = analyse(
        results,
        factors,
        matrix.data.metric,
        within,
        budget=None if budget is None else budget.label,
        mitigation=effects,
    )
    analysis.plot(folder.plot, matrix.data.bias_attribute)
    seconds = time.perf_counter() - started
    stats = run.stats()
    summary = {
        "matrix": str(matrix.source),
        "cells": {
            "total": len(matrix.cells),
            "ok": int((results["status"] == "ok").sum()),
            "failed": int((results["status"] == "failed").sum()),
            "from_cache": run.cached_cells,
            "skipped_combinations": matrix.skipped,
        },
        "cache": {"root": str(cache.root), **stats, "discarded": run.discarded},
        "seconds": seconds,
        "results_parquet": parquet,
        "analysis": analysis.to_dict(),
    }
    atomic_write_text(folder.summary_json, json.dumps(summary, indent=2, default=str) + "\n")
    atomic_write_text(folder.summary_md, _markdown(matrix, analysis, stats, run.cached_cells, folder.plot.name))
    _write_state(folder, matrix, cache.root, "finished")
    return SweepResult(out, results, analysis, stats, seconds, parquet)


def _write_results(folder: SweepFolder, results: pd.DataFrame) -> bool:
    """results.csv, and results.parquet when pyarrow is installed (whether it was written)."""
    atomic_write_text(folder.results, results.to_csv(index=False))
    parquet = importlib.util.find_spec("pyarrow") is not None
    if parquet:
        buffer = io.BytesIO()
        results.to_parquet(buffer, index=False)
        atomic_write_bytes(folder.parquet, buffer.getvalue())
    return parquet


def _check_out(folder: SweepFolder, matrix: Matrix, resume: bool) -> None:
    """Refuse to mix sweeps in one folder: a second run needs --resume and the same matrix."""
    out = folder.path
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the sweep (it is created if missing)")
    if folder.is_sweep():
        previous = folder.read_state()
        if not resume:
            raise UsageError(f"{out} already holds a sweep; pass --resume to continue it, or choose another --out")
        if previous.get("matrix_digest") != matrix.digest():
            raise UsageError(
                f"{out} holds a sweep of a different matrix; --resume needs the same one, or another --out"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not a sweep folder (no {folder.state.name}); choose another --out")


def _check_size(matrix: Matrix, plan: Plan, cache: Cache, max_cells: int | None, progress: Progress) -> None:
    """Say how big the sweep is before it starts, and refuse one above its limit (a typo in a factor list
    multiplies the work): ``max_cells`` or the matrix's own, the larger; None (``--yes``) runs any size."""
    todo = Counter(task.stage for key, task in plan.tasks.items() if not cache.has(task.stage, key))
    seconds = sum(SECONDS_PER_TASK[stage] * n for stage, n in todo.items())
    tasks = ", ".join(f"{n} {stage}" for stage, n in sorted(todo.items(), key=lambda kv: STAGES.index(kv[0])))
    summary = (
        f"{len(matrix.cells)} cells: {sum(todo.values())} tasks to compute ({tasks or 'none, all cached'}), "
        f"roughly {_rough(seconds)} at the pace of the bundled demo"
    )
    limit = None if max_cells is None else max(max_cells, matrix.max_cells or 0)
    if limit is not None and len(matrix.cells) > limit:
        raise UsageError(
            f"{summary}; that is more than {limit} cells: pass --yes to run it anyway, or set "
            f"max_cells = {len(matrix.cells)} in {matrix.source.name}"
        )
    progress.note(summary)


def _rough(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _write_state(folder: SweepFolder, matrix: Matrix, cache_root: Path, status: str) -> None:
    state = {
        "format": _FORMAT,
        "status": status,
        "matrix": str(matrix.source),
        "matrix_digest": matrix.digest(),
        "settings": matrix.to_dict(),
        "factors": [f.name for f in matrix.factors],
        "metric": matrix.data.metric,
        "bias_attribute": matrix.data.bias_attribute,
        "cache": str(cache_root),
        "cells": [{"id": cell.id, "factors": cell.factors()} for cell in matrix.cells],
    }
    atomic_write_text(folder.state, json.dumps(state, indent=2) + "\n")


class _Run:
    """The scheduling state of one sweep: which tasks are done, running, failed, and which cells finished."""

    def __init__(
        self,
        matrix: Matrix,
        plan: Plan,
        cache: Cache,
        out: SweepFolder,
        progress: Progress,
        on_status: Callable[[SweepStatus], None] | None,
        *,
        budget: MCUBudget | None = None,
    ):
        self.matrix, self.plan, self.cache, self.out = matrix, plan, cache, out
        self.budget = budget
        self.progress, self.on_status = progress, on_status
        self.discarded: list[str] = []
        """Damaged cache entries found and discarded, in words."""
        self.repair: set[str] = set()
        """Their keys: computed again even if no cell needs them now, so the cache is whole again."""
        self.done = self._trusted_entries()
        self.hits = set(self.done)
        self.computed: set[str] = set()
        self.failed: dict[str, tuple[str, str]] = {}
        """Task key -> (message, traceback); a task that depends on a failed one inherits its failure."""
        self.running: dict[Future, str] = {}
        self.needs = [self._needed(cell.export, cell.score) for cell in plan.cells]
        self.rows: list[dict[str, Any] | None] = [None] * len(plan.cells)
        self.cached_cells = 0
        self.computed_cells = 0
        self.failed_cells = 0
        self.compute_started = time.perf_counter()
        self.order = plan.priority()
        self.last: str | None = None

    def _trusted_entries(self) -> set[str]:
        """The plan's tasks whose cache entries exist and are intact; a damaged entry is discarded (and so
        computed again) with a note."""
        trusted = set()
        for key, task in self.plan.tasks.items():
            if not self.cache.has(task.stage, key):
                continue
            damage = self.cache.verify(task.stage, key)
            if damage is None:
                trusted.add(key)
                continue
            self.cache.discard(task.stage, key)
            self.repair.add(key)
            self.discarded.append(f"{task.stage} {key[:12]}: {damage}")
            self.progress.note(f"cache entry {task.stage} {key[:12]} is damaged ({damage}); computing it again")
        return trusted

    def _needed(self, *keys: str) -> set[str]:
        """The tasks still to run so that ``keys`` exist: each missing one plus its missing inputs."""
        needed: set[str] = set()
        stack = [k for k in keys if k not in self.done]
        while stack:
            key = stack.pop()
            if key not in needed:
                needed.add(key)
                stack += [d for d in self.plan.tasks[key].deps if d not in self.done]
        return needed

    def stats(self) -> dict[str, dict[str, int]]:
        def by_stage(keys: set[str]) -> dict[str, int]:
            return {stage: sum(self.plan.tasks[k].stage == stage for k in keys) for stage in STAGES}

        return {"hits": by_stage(self.hits), "misses": by_stage(self.computed), "failed": by_stage(set(self.failed))}

    def execute(self, jobs: int, context: SweepContext, executor: str, address: str | None) -> None:
        cells = self.matrix.cells
        pending = set().union(*self.needs, self._needed(*self.repair))
        with self.progress.task(f"Sweep of {len(cells)} cells", total=len(cells)) as advance:
            self.advance = advance
            for index, needs in enumerate(self.needs):
                if not needs:
                    self.cached_cells += 1
                    self._finish(index, None)
            self.compute_started = time.perf_counter()
            self._status()
            broken = bool(pending)  # a fully cached sweep starts no pool (and no Ray)
            while broken:
                with open_pool(executor, jobs, context, address) as pool:
                    broken = self._schedule(pool, jobs, pending)

    def _schedule(self, pool: TaskPool, jobs: int, pending: set[str]) -> bool:
        """Keep ``jobs`` tasks running until none is left; True if the pool broke (a worker died) first."""
        while pending or self.running:
            self._propagate_failures(pending)
            ready = sorted(
                (k for k in pending if all(d in self.done for d in self.plan.tasks[k].deps)),
                key=lambda k: (self.order[k], STAGES.index(self.plan.tasks[k].stage)),
            )
            for key in ready[: jobs - len(self.running)]:
                pending.discard(key)
                self.running[pool.submit(self.plan.tasks[key])] = key
            self._status()
            if not self.running:
                return False
            finished, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                key = self.running.pop(future)
                try:
                    _, error, trace = future.result()
                except Exception as exc:
                    lost = pool.worker_loss(exc)
                    if lost is None:
                        raise
                    error, trace = lost, ""
                    broken = not pool.survives_worker_loss
                if error is None:
                    self.done.add(key)
                    self.computed.add(key)
                else:
                    self.failed[key] = (f"{self.plan.tasks[key].stage}: {error}", trace)
            if broken:  # every task in a broken pool is lost with it
                for key in self.running.values():
                    self.failed[key] = (
                        f"{self.plan.tasks[key].stage}: its worker pool broke (another worker died)",
                        "",
                    )
                self.running.clear()
            self._propagate_failures(pending)
            self._finish_ready()
            if broken:
                return True
        return False

    def _propagate_failures(self, pending: set[str]) -> None:
        for key in sorted(pending, key=lambda k: STAGES.index(self.plan.tasks[k].stage)):
            failed_input = next((d for d in self.plan.tasks[key].deps if d in self.failed), None)
            if failed_input is not None:
                self.failed[key] = self.failed[failed_input]
                pending.discard(key)

    def _finish_ready(self) -> None:
        for index, needs in enumerate(self.needs):
            if self.rows[index] is not None:
                continue
            failure = next((self.failed[k] for k in sorted(needs) if k in self.failed), None)
            if failure is not None:
                self._finish(index, failure)
            elif needs <= self.done:
                self.computed_cells += 1
                self._finish(index, None)

    def _finish(self, index: int, failure: tuple[str, str] | None) -> None:
        cell = self.matrix.cells[index]
        folder = self.out.cell(cell.id)
        if failure is None:
            row = {"cell": cell.id, "status": "ok", "error": "", **cell.factors()}
            row.update(self._write_cell(index, folder))
            folder.error.unlink(missing_ok=True)
            self.last = f"{cell.id} ok"
        else:
            message, trace = failure
            row = {"cell": cell.id, "status": "failed", "error": message, **cell.factors()}
            atomic_write_text(folder.error, f"{message}\n\n{trace}")
            self.failed_cells += 1
            self.last = f"{cell.id} failed: {message}"
            self.progress.note(f"cell {cell.id} failed: {message}")
        self.rows[index] = row
        self.advance(1)
        self._status()

    def _write_cell(self, index: int, folder: CellFolder) -> dict[str, Any]:
        """The cell's model file, predictions and report (with its own paths) from the cache."""
        cell, plan = self.matrix.cells[index], self.plan.cells[index]
        exported = self.cache.entry("export", plan.export)
        scored = self.cache.entry("score", plan.score)
        model_file = folder.model(read_json(exported / "export.json")["file"])
        copy_file(exported / model_file.name, model_file)
        copy_file(scored / "predictions.csv", folder.predictions)
        report = read_json(scored / "report.json")
        report["inputs"][0]["path"] = str(model_file)
        report["model"]["path"] = str(model_file)
        report["settings"]["sweep"] = {"cell": cell.id, "matrix": str(self.matrix.source), "factors": cell.factors()}
        atomic_write_text(folder.report, to_json(report))
        row = read_json(scored / "measurements.json")
        if self.budget is not None:
            row.update(_mcu_columns(model_file, self.budget))
        return row

    def _status(self) -> None:
        if self.on_status is None:
            return
        finished = self.cached_cells + self.computed_cells + self.failed_cells
        computed = self.computed_cells + self.failed_cells
        left = len(self.rows) - finished
        pace = (time.perf_counter() - self.compute_started) / computed if computed else None
        running = {self.order[key] for key in self.running.values()}
        self.on_status(
            SweepStatus(
                total=len(self.rows),
                done=self.cached_cells + self.computed_cells,
                cached=self.cached_cells,
                running=len(running),
                failed=self.failed_cells,
                seconds_left=None if pace is None else pace * left,
                last=self.last,
            )
        )


def _mcu_columns(model_file: Path, budget: MCUBudget) -> dict[str, Any]:
    """The budget check of one cell's file; only TFLite files can run on TFLM, so others never fit."""
    if model_file.suffix != ".tflite":
        reason = f"{budget.label}: a {model_file.suffix.lstrip('.')} file; TFLM runs TFLite models only"
        return {"arena_bytes": None, "flash_bytes": model_file.stat().st_size, "fits_mcu": False, "mcu_reason": reason}
    try:
        fit = fits(model_file, budget)
    except OndeviceAuditError as exc:  # one unreadable footprint must not stop the sweep at its last step
        reason = f"{budget.label}: could not check it on TFLM: {exc}"
        return {"arena_bytes": None, "flash_bytes": model_file.stat().st_size, "fits_mcu": False, "mcu_reason": reason}
    return {
        "arena_bytes": fit.arena_bytes,
        "flash_bytes": fit.flash_bytes,
        "fits_mcu": fit.ok,
        "mcu_reason": fit.reason,
    }


def _results_frame(matrix: Matrix, rows: list[dict[str, Any] | None]) -> pd.DataFrame:
    complete = [row for row in rows if row is not None]
    if len(complete) != len(matrix.cells):
        raise RuntimeError(f"{len(matrix.cells) - len(complete)} cell(s) were never scheduled")
    columns = list(dict.fromkeys(key for row in complete for key in row))
    return pd.DataFrame(complete, columns=columns)


def _markdown(
    matrix: Matrix, analysis: Analysis, stats: dict[str, dict[str, int]], cached_cells: int, plot: str
) -> str:
    hits = ", ".join(f"{stage} {n}" for stage, n in stats["hits"].items() if n) or "none"
    misses = ", ".join(f"{stage} {n}" for stage, n in stats["misses"].items() if n) or "none"
    head = [
        f"# Sweep of {len(matrix.cells)} cells: {matrix.source.name}",
        "",
        f"Cache hits: {hits}. Computed: {misses}. Cells from cache: {cached_cells}.",
        "",
    ]
    if analysis.budget is not None:
        head += [f"Microcontroller budget: {analysis.budget}; {analysis.fitting} finished cell(s) fit it.", ""]
    return "\n".join(head) + analysis.to_markdown(plot)
