"""How predictions become per-group numbers, shared by ``audit``/``score`` and every sweep cell.

``ScoreOptions`` holds every scoring setting with its default, declared once (the CLI takes its defaults from
here). ``metric_frame`` scores a table of labels and predictions per group; ``disparity_frame`` compares several
runs' predictions of the same clips; ``frame_warnings`` says what a reader must know to read the numbers right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import defaults

if TYPE_CHECKING:  # pandas and the metrics load when something is scored, not when options are declared
    import pandas as pd

    from ondevice_audit.metrics import GroupMetricFrame
    from ondevice_audit.metrics.detection import DetectionFrame
    from ondevice_audit.metrics.disparity import DisparityFrame

__all__ = ["ScoreOptions", "disparity_frame", "frame_warnings", "metric_frame", "scored_rows"]


@dataclass(frozen=True)
class ScoreOptions:
    """How predictions are scored; shared by ``score``, ``audit`` and the sweep's cells."""

    groups: tuple[str, ...] = ()
    metric: str | None = defaults.METRIC
    """None: the task's own (MCC for a classifier, the detection rate for a detector)."""
    negative_labels: tuple[str, ...] = defaults.NEGATIVE_LABELS
    min_group_size: int = defaults.MIN_GROUP_SIZE
    bootstrap: int = defaults.BOOTSTRAP
    permutations: int = defaults.PERMUTATIONS
    seed: int = 0
    confidence: float = defaults.CONFIDENCE
    split_file: Path | None = None
    """With ``split``: score only the manifest rows this file (as ``train`` writes) assigns to ``split``."""
    split: str | None = None
    max_samples_per_group: int | None = None
    """A seeded stratified subsample (per combination of group values), for quick checks on slow runtimes."""

    def settings(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "groups": list(self.groups),
            "negative_labels": list(self.negative_labels),
            "split_file": None if self.split_file is None else str(self.split_file),
        }


def _speakers(table: pd.DataFrame) -> np.ndarray | None:
    return table["speaker"].to_numpy() if "speaker" in table.columns else None


def metric_frame(table: pd.DataFrame, options: ScoreOptions, negatives: list[str] | None = None) -> GroupMetricFrame:
    """``table``'s ``label`` and ``prediction`` scored per group as ``options`` say (``speaker`` when present)."""
    from ondevice_audit.metrics import GroupMetricFrame

    if not options.groups:
        raise UsageError("name at least one group column with --group")
    return GroupMetricFrame(
        y_true=table["label"].to_numpy(),
        y_pred=table["prediction"].to_numpy(),
        sensitive_features=table[list(options.groups)],
        metric=options.metric or defaults.METRIC,
        speakers=_speakers(table),
        negative_labels=list(options.negative_labels) if negatives is None else negatives,
        min_group_size=options.min_group_size,
        n_boot=options.bootstrap,
        n_perm=options.permutations,
        seed=options.seed,
        confidence=options.confidence,
    )


def disparity_frame(
    table: pd.DataFrame,
    predictions: list[np.ndarray],
    options: ScoreOptions,
    metric_function: Callable[[np.ndarray], np.ndarray] | None = None,
) -> DisparityFrame:
    """Several runs' ``predictions`` of ``table``'s clips compared per group as ``options`` say (the first is the
    reference); ``metric_function`` of confusion matrices replaces ``options.metric``'s (a detector's metric)."""
    from ondevice_audit.metrics.disparity import DisparityFrame

    return DisparityFrame(
        metric_function=metric_function,
        y_true=table["label"].to_numpy(),
        predictions=predictions,
        sensitive_features=table[list(options.groups)],
        metric=options.metric or defaults.METRIC,
        speakers=_speakers(table),
        negative_labels=list(options.negative_labels),
        min_group_size=options.min_group_size,
        n_boot=options.bootstrap,
        seed=options.seed,
        confidence=options.confidence,
    )


def scored_rows(table: pd.DataFrame, failures: dict[int, str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of ``table`` no run failed on, and which rows they are."""
    from ondevice_audit.data import DataError

    scored_mask = np.ones(len(table), dtype=bool)
    scored_mask[list(failures)] = False
    if not scored_mask.any():
        first = next(iter(failures.values()))
        raise DataError(f"no file could be scored ({len(failures)} failed; first: {first})")
    return table.loc[scored_mask].reset_index(drop=True), scored_mask


def frame_warnings(frame: GroupMetricFrame | DetectionFrame, failed: int) -> list[str]:
    """What a reader must know to read a frame's numbers right: resampling unit, failures, small groups,
    undefined RB, RB not distinguishable from chance, missing group values."""
    from ondevice_audit.metrics.detection import DetectionFrame
    from ondevice_audit.metrics.frame import MISSING_GROUP

    detector = isinstance(frame, DetectionFrame)

    notes = []
    if frame.speakers is None:
        notes.append(
            "no speaker column: the bootstrap and permutations resample clips, which treats clips of one speaker "
            "as independent, so intervals are too narrow and p-values too small"
        )
    if failed:
        notes.append(f"{failed} sample(s) could not be scored and are left out (see samples.failures)")
    notes += frame.notes if detector else []  # a detector says itself which clips a group lacks
    for attribute in frame.attributes:
        small = [g.name for g in attribute.groups if not g.in_rb]
        if small and not detector:
            notes.append(
                f"{attribute.name}: group(s) {', '.join(small)} have fewer than {frame.min_group_size} clips; "
                "shown but left out of RB"
            )
        rb = attribute.rb
        if rb.value is None:
            notes.append(f"{attribute.name}: RB is undefined: {rb.undefined_reason}")
        elif rb.p_value is not None and rb.p_value > 1 - frame.confidence:
            notes.append(
                f"{attribute.name}: RB {rb.value:.3g} is not distinguishable from shuffled groups "
                f"(p = {rb.p_value:.3g}); its interval describes the estimate, which is biased upwards near 0"
            )
        elif rb.bootstrap_undefined_share:
            notes.append(
                f"{attribute.name}: RB is undefined in {rb.bootstrap_undefined_share:.1%} of bootstrap resamples"
            )
        if any(g.name == MISSING_GROUP for g in attribute.groups):
            notes.append(f"{attribute.name}: some rows have no value; they form the group '{MISSING_GROUP}'")
    return notes
