"""Base, variant and candidates run on the same clips and compared per group, as ``audit --reference`` compares.

Every model runs through ``targets/runs.py`` on the local target (the one path every audit takes), on the
in-memory inputs of ``data.py``, with single-sample latency probes. Scoring goes through the model's task
(``tasks.py``, as ``audit --reference`` scores): the task's frame for the base (its RB interval is the bar a fix
must meet) and its paired decisions over every run, base first: each run's RB and its change from the base with
the paired speaker-bootstrap interval. A detector's runs are decided at one threshold for every group, chosen on
the population's negatives per run (``--at-far``) or given (``--threshold``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ondevice_audit._files import size_of
from ondevice_audit.explain.data import ExplainData
from ondevice_audit.metrics.definitions import DetectorMetric, MetricDefinition, higher_is_better
from ondevice_audit.progress import Progress
from ondevice_audit.runtimes import RuntimeOptions
from ondevice_audit.scoring import ScoreOptions, frame_warnings, scored_rows
from ondevice_audit.targets.runs import PROBE_WARMUP, Chunk, Run, RunRecord, RunSettings, execute_runs

if TYPE_CHECKING:
    from ondevice_audit.metrics import GroupMetricFrame
    from ondevice_audit.metrics.detection import DetectionFrame
    from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = ["Comparison", "RunResult", "Runs", "compare", "metric_falls"]

_CHUNK = 256


@dataclass
class Runs:
    """Every model audited so far (base first), with its scores on every clip."""

    task: ClassifierTask | DetectorTask
    """What the outputs mean: how every run is checked, decided and scored."""
    runtime_options: RuntimeOptions
    """How every model is opened (``read_model``'s: which output)."""
    batch_size: int
    latency_samples: int
    trust_model: bool = False
    roles: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)

    def add(self, models: Sequence[tuple[str, str, Path]], data: ExplainData, progress: Progress) -> None:
        """Run ``(role, name, path)`` models over every clip."""
        from ondevice_audit.targets import parse_target

        target = parse_target("local", trust_model=self.trust_model)
        runs = [Run(name, path, target, None) for _, name, path in models]
        chunks = (
            Chunk(np.arange(start, min(start + _CHUNK, len(data.inputs))), data.inputs[start : start + _CHUNK],
                  len(data.inputs[start : start + _CHUNK]))
            for start in range(0, len(data.inputs), _CHUNK)
        )  # fmt: skip
        settings = RunSettings(batch_size=self.batch_size, latency_probe=self.latency_samples,
                               runtime_options=self.runtime_options)  # fmt: skip
        outcome = execute_runs(runs, chunks, len(data.inputs), settings=settings, check_model=self.task.check_output,
                               progress=progress, description=f"Auditing {len(runs)} model(s)")  # fmt: skip
        self.failures.update(outcome.failures)
        for (role, name, path), scores, record in zip(models, outcome.scores, outcome.records, strict=True):
            self.roles.append(role)
            self.names.append(name)
            self.paths.append(path)
            self.scores.append(scores)
            self.records.append(record)

    def outputs(self) -> list[np.ndarray]:
        """Every run's outputs as the task reads them: predicted classes, or a detector's probabilities."""
        return [self.task.outputs(scores) for scores in self.scores]


@dataclass(frozen=True)
class RunResult:
    role: str
    """``base``, ``variant``, ``rebuilt`` or ``candidate``."""
    name: str
    path: Path
    sha256: str
    size_bytes: int
    latency_ms: float | None
    """Median single-sample latency on this machine."""
    metric: float | None
    groups: dict[str, float | None]
    """The metric per group of the explained attribute."""
    rb: float | None
    rb_difference: float | None
    """RB minus the base's (None for the base)."""
    rb_difference_ci: tuple[float, float] | None
    within_base_interval: bool | None
    """RB no higher than the top of the base's bootstrap interval: no more biased than the base is, within its
    uncertainty (None when either is undefined)."""
    threshold: float | None
    """A detector's: the threshold this run was decided at (chosen on the population's negatives, or given)."""
    agreement: float
    """Share of the scored clips decided as the variant decides them (class, or a detector's accept)."""
    max_score_difference: float
    """Largest |score difference| to the variant over the scored clips."""


@dataclass(frozen=True)
class Comparison:
    attribute: str
    metric: str
    definition: MetricDefinition | DetectorMetric
    """What ``metric`` means for this task (frr, far and precision differ between classifiers and detectors)."""
    resampling: str
    groups: list[str]
    included: list[bool]
    """Per group: in RB (at least ``min_group_size`` clips)."""
    base_rb: float | None
    base_ci: tuple[float, float] | None
    runs: list[RunResult]
    scored: pd.DataFrame
    """The rows every run scored."""
    scored_mask: np.ndarray
    """Over ``data.frame``: which rows those are."""
    warnings: list[str]
    """What a reader must know to read the base's numbers right (``scoring.frame_warnings``)."""
    base_frame: GroupMetricFrame | DetectionFrame
    """The base's own audit (a detector's: its threshold with its interval)."""

    def variant_changed(self) -> bool:
        """The variant (run 1) is more biased than the base beyond both intervals: its RB above the base's interval
        and its paired change from the base above 0; or its RB undefined (a group's metric no longer positive)
        where the base's is defined, with some group worse off."""
        variant = self.runs[1]
        if variant.rb is None:
            falls = self._falls()
            return self.base_rb is not None and bool(falls) and max(falls.values()) > 0
        ci = variant.rb_difference_ci
        return variant.within_base_interval is False and ci is not None and ci[0] > 0

    def worse_off(self) -> str | None:
        """The group the variant (run 1) hurts most relative to everyone: the largest fall of its metric from
        the base's, beyond the fall of the overall metric (rises count as negative falls)."""
        falls = self._falls()
        return max(falls, key=lambda g: falls[g]) if falls else None

    def _falls(self) -> dict[str, float]:
        base, variant = self.runs[0], self.runs[1]
        included = dict(zip(self.groups, self.included, strict=True))
        return metric_falls(self.metric, base.groups, variant.groups, (base.metric, variant.metric), included)


def metric_falls(
    metric: str,
    before: Mapping[str, float | None],
    after: Mapping[str, float | None],
    overall: tuple[float | None, float | None],
    included: Mapping[str, bool],
) -> dict[str, float]:
    """Per group in RB: how much further its metric fell from ``before`` to ``after`` than the overall metric did
    (oriented so that worse is positive; a rise is a negative fall). Empty when the overall metric is undefined."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    if overall[0] is None or overall[1] is None:
        return {}
    everyone = sign * (overall[0] - overall[1])
    falls = {}
    for group, counted in included.items():
        old, new = before.get(group), after.get(group)
        if counted and old is not None and new is not None:
            falls[group] = sign * (old - new) - everyone
    return falls


def compare(runs: Runs, data: ExplainData, options: ScoreOptions) -> Comparison:
    """Score every run on the rows no run failed on, as its task scores it (a detector at its population
    threshold); the explained attribute is the first group column."""
    assert options.metric is not None  # explain/job.py resolves the options through the task
    outputs = runs.outputs()
    scored, mask = scored_rows(data.frame, runs.failures)
    base_frame = runs.task.frame(scored, outputs[0][mask], options)
    base = base_frame.attributes[0]
    decisions = runs.task.decided(scored, [output[mask] for output in outputs], options)
    frame = decisions.disparity()
    disparity = frame.attributes[0]
    low_high = base.rb.ci
    results = []
    for i, record in enumerate(runs.records):
        bias = disparity.rb[i]
        within = None
        if bias.rb is not None and low_high is not None:
            within = bool(bias.rb <= low_high[1])
        results.append(
            RunResult(
                role=runs.roles[i],
                name=runs.names[i],
                path=runs.paths[i],
                sha256=record.model_sha256,
                size_bytes=size_of(runs.paths[i]),
                latency_ms=_latency_ms(record),
                metric=frame.overall.values[i],
                groups={g.name: g.values[i] for g in disparity.groups},
                rb=bias.rb,
                rb_difference=bias.difference,
                rb_difference_ci=bias.ci,
                within_base_interval=within,
                threshold=None if decisions.thresholds is None else decisions.thresholds[i],
                agreement=float(np.mean(decisions.runs[i] == decisions.runs[1])),
                max_score_difference=float(np.abs(runs.scores[i][mask] - runs.scores[1][mask]).max()),
            )
        )
    return Comparison(
        attribute=disparity.name,
        metric=options.metric,
        definition=runs.task.metric(options.metric),
        resampling=disparity.resampling,
        groups=[g.name for g in disparity.groups],
        included=[g.in_rb for g in disparity.groups],
        base_rb=base.rb.value,
        base_ci=low_high,
        runs=results,
        scored=scored,
        scored_mask=mask,
        warnings=frame_warnings(base_frame, len(runs.failures) + len(data.failures)),
        base_frame=base_frame,
    )


def _latency_ms(record: RunRecord) -> float | None:
    times = record.probe
    if times is None or not len(times):
        return None
    return float(np.median(times[PROBE_WARMUP:] if len(times) > PROBE_WARMUP else times)) * 1000
