"""Several runs of a model on the same clips: which runs to make, and the report's ``comparison`` section.

A *run* is one model file on one target with one runtime. ``audit MODEL --target A --target B --runtime R1
--runtime R2`` runs MODEL on every target with every runtime; ``--reference BASE`` adds BASE, run on the first
target, in front. The first run is the reference that flips, forgotten clips and RB differences are measured
against (see ``metrics/disparity.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import model_format
from ondevice_audit.metrics.disparity import DisparityFrame, GroupDisparity
from ondevice_audit.runtimes import RUNTIMES
from ondevice_audit.targets import device_runner
from ondevice_audit.targets.interface import ModelOnTarget, Target, TargetFacts
from ondevice_audit.targets.resume import BatchStats

__all__ = ["RUNTIME_FORMATS", "Run", "RunRecord", "comparison_section", "plan_runs"]

RUNTIME_FORMATS = {**RUNTIMES, **device_runner.RUNTIMES}
"""Every runtime name a target knows -> the model format it runs."""


@dataclass(frozen=True)
class Run:
    label: str
    model_path: Path
    target: Target
    runtime: str | None
    """As asked; None: the target picks the first runtime that loads the model."""


@dataclass
class RunRecord:
    """What a run produced besides its predictions."""

    model: ModelOnTarget
    device: TargetFacts
    model_sha256: str
    latency: np.ndarray
    """Seconds per sample, for every sample the run scored."""
    peak_memory_bytes: int | None
    batches: BatchStats


def plan_runs(
    model_path: Path, targets: Sequence[Target], runtimes: Sequence[str | None], reference: Path | None = None
) -> list[Run]:
    """The runs in order, reference first; labels name only what differs between them."""
    if not targets:
        raise UsageError("name at least one --target")
    runtimes = list(runtimes) or [None]
    for runtime in runtimes:
        if runtime is not None and runtime not in RUNTIME_FORMATS:
            raise UsageError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIME_FORMATS)}")
    names = {model_path: model_path.name}
    if reference is not None:
        same = reference.name == model_path.name
        names = {reference: f"reference {reference.name}" if same else reference.name, model_path: model_path.name}

    def label(path: Path, target: Target, runtime: str | None) -> str:
        text = target.label + (f" ({runtime})" if len(runtimes) > 1 and runtime else "")
        return f"{names[path]} @ {text}" if reference is not None else text

    runs = []
    if reference is not None:
        wanted = runtimes[0]
        runtime = wanted if wanted and RUNTIME_FORMATS[wanted] == model_format(reference) else None
        runs.append(Run(label(reference, targets[0], runtime), reference, targets[0], runtime))
    runs += [Run(label(model_path, t, r), model_path, t, r) for t in targets for r in runtimes]
    seen: set[str] = set()
    for run in runs:
        if run.label in seen:
            raise UsageError(f"{run.label} is asked for twice; name each target and runtime once")
        seen.add(run.label)
    return runs


def _latency(seconds: np.ndarray) -> dict[str, float] | None:
    if not len(seconds):
        return None
    milliseconds = seconds * 1000
    return {
        "median": float(np.median(milliseconds)),
        "p90": float(np.quantile(milliseconds, 0.9)),
        "mean": float(milliseconds.mean()),
    }


def _run_entry(index: int, run: Run, record: RunRecord) -> dict[str, Any]:
    device = record.device
    return {
        "label": run.label,
        "role": "reference" if index == 0 else "compared",
        "model": {"path": str(run.model_path), "sha256": record.model_sha256, "format": model_format(run.model_path)},
        "target": run.target.label,
        **dataclasses.asdict(record.model),
        "device": {
            "python": device.python,
            "machine": device.machine,
            "system": device.system,
            "cpu_count": device.cpu_count,
            "memory_total_bytes": device.memory_total_bytes,
        },
        "latency_ms": _latency(record.latency),
        "peak_memory_bytes": record.peak_memory_bytes,
        "batches": dataclasses.asdict(record.batches),
    }


def _group_entry(group: GroupDisparity, runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "name": group.name,
        "n": group.n,
        "n_speakers": group.n_speakers,
        "in_rb": group.in_rb,
        "reference_correct": group.reference_correct,
        "runs": [
            {
                "run": run.label,
                "metric": group.values[i],
                "flips": None if i == 0 else group.flips[i],
                "flip_rate": None if i == 0 else group.flip_rate(i),
                "forgotten": None if i == 0 else group.forgotten[i],
                "forgotten_share": None if i == 0 else group.forgotten_share(i),
            }
            for i, run in enumerate(runs)
        ],
    }


def comparison_section(runs: Sequence[Run], records: Sequence[RunRecord], disparity: DisparityFrame) -> dict[str, Any]:
    """The report's ``comparison``: runs with latency and memory, then per attribute the per-group agreement."""
    return {
        "reference": runs[0].label,
        "metric": disparity.metric,
        "runs": [_run_entry(i, run, record) for i, (run, record) in enumerate(zip(runs, records, strict=True))],
        "overall": _group_entry(disparity.overall, runs),
        "attributes": [
            {
                "name": attribute.name,
                "columns": attribute.columns,
                "resampling": attribute.resampling,
                "rb": [
                    {
                        "run": run.label,
                        "value": bias.rb,
                        "difference": bias.difference,
                        "ci": None if bias.ci is None else list(bias.ci),
                        "bootstrap_undefined_share": bias.bootstrap_undefined_share,
                    }
                    for run, bias in zip(runs, attribute.rb, strict=True)
                ],
                "groups": [_group_entry(group, runs) for group in attribute.groups],
            }
            for attribute in disparity.attributes
        ],
    }
