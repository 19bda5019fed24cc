"""How predictions become per-group numbers, shared by ``audit``/``score`` and every sweep cell.

``ScoreOptions`` holds every scoring setting with its default, declared once (the CLI takes its defaults from
here). ``metric_frame`` scores a table of labels and predictions per group; ``disparity_frame`` compares several
runs' predictions of the same clips; ``frame_warnings`` says what a reader must know to read the numbers right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import defaults

if TYPE_CHECKING:  # pandas and the metrics load when something is scored, not when options are declared
    import pandas as pd

    from ondevice_audit.metrics import BiasResult, GroupMetricFrame
    from ondevice_audit.metrics.detection import DetectionFrame
    from ondevice_audit.metrics.disparity import DisparityFrame

__all__ = [
    "ScoreOptions",
    "check_label_spellings",
    "disparity_frame",
    "frame_warnings",
    "metric_frame",
    "scored_rows",
    "speakers_of",
    "spelling_clashes",
]

SPELLINGS = (
    "{what} that differ only in spelling would be counted as different classes: {pairs}; make them identical "
    "in {where} (labels are compared exactly as written)"
)


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
    max_groups: int = defaults.MAX_GROUPS
    """An attribute with more groups is refused (an id column given as a group)."""

    def frame_settings(self) -> dict[str, Any]:
        """The keywords every group frame takes from these options: group sizes, resampling, the group limit."""
        return {
            "min_group_size": self.min_group_size,
            "n_boot": self.bootstrap,
            "n_perm": self.permutations,
            "seed": self.seed,
            "confidence": self.confidence,
            "max_groups": self.max_groups,
        }

    def settings(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "groups": list(self.groups),
            "negative_labels": list(self.negative_labels),
            "split_file": None if self.split_file is None else str(self.split_file),
        }


def speakers_of(table: pd.DataFrame) -> np.ndarray | None:
    """Each row's speaker, None without a ``speaker`` column (the frames then resample clips, with a warning)."""
    return table["speaker"].to_numpy() if "speaker" in table.columns else None


def _spelling_key(value: str) -> tuple[str, object]:
    """What two spellings of one label share: its number (``1``, ``1.0``, ``01``), else its text without case or
    surrounding space (``yes ``, ``YES``)."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return ("text", text.casefold())
    return ("number", number) if np.isfinite(number) else ("text", text.casefold())


def spelling_clashes(values: Iterable[str]) -> list[list[str]]:
    """Sets of distinct values that are one value spelled differently (see ``_spelling_key``)."""
    spelled: dict[tuple[str, object], set[str]] = {}
    for value in set(values):
        spelled.setdefault(_spelling_key(value), set()).add(value)
    return sorted(sorted(found) for found in spelled.values() if len(found) > 1)


def _listed(clashes: list[list[str]]) -> str:
    return "; ".join(" vs ".join(repr(value) for value in found) for found in clashes[:5])


def check_label_spellings(labels: Iterable[str], where: str, what: str = "labels") -> None:
    """A ``DataError`` when some of ``labels`` are one label spelled two ways (``1``/``1.0``, ``yes ``/``YES``):
    compared exactly, they would silently count as wrong predictions."""
    from ondevice_audit.data import DataError

    clashes = spelling_clashes(labels)
    if clashes:
        raise DataError(SPELLINGS.format(what=what, pairs=_listed(clashes), where=where))


def metric_frame(table: pd.DataFrame, options: ScoreOptions, negatives: list[str] | None = None) -> GroupMetricFrame:
    """``table``'s ``label`` and ``prediction`` scored per group as ``options`` say (``speaker`` when present).
    Labels, predictions and negative labels that are one label spelled differently are refused."""
    from ondevice_audit.metrics import GroupMetricFrame

    if not options.groups:
        raise UsageError("name at least one group column with --group")
    negatives = list(options.negative_labels) if negatives is None else negatives
    present = {*table["label"].astype(str), *table["prediction"].astype(str)}
    check_label_spellings(present, "the labels and predictions")
    absent = [n for n in negatives if n not in present]
    check_label_spellings(
        [*present, *absent], "--negative-labels (or data.negative_labels) and the data", "negative labels"
    )
    return GroupMetricFrame(
        y_true=table["label"].to_numpy(),
        y_pred=table["prediction"].to_numpy(),
        sensitive_features=table[list(options.groups)],
        metric=options.metric or defaults.METRIC,
        speakers=speakers_of(table),
        negative_labels=negatives,
        **options.frame_settings(),
    )


def disparity_frame(
    table: pd.DataFrame,
    predictions: list[np.ndarray],
    options: ScoreOptions,
    metric_function: Callable[[np.ndarray], np.ndarray] | None = None,
    metric_support: tuple[Callable[[np.ndarray], np.ndarray], str] | None = None,
) -> DisparityFrame:
    """Several runs' ``predictions`` of ``table``'s clips compared per group as ``options`` say (the first is the
    reference); ``metric_function`` of confusion matrices replaces ``options.metric``'s (a detector's metric),
    ``metric_support`` counts the clips it rests on."""
    from ondevice_audit.metrics.disparity import DisparityFrame

    return DisparityFrame(
        metric_function=metric_function,
        metric_support=metric_support,
        y_true=table["label"].to_numpy(),
        predictions=predictions,
        sensitive_features=table[list(options.groups)],
        metric=options.metric or defaults.METRIC,
        speakers=speakers_of(table),
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
    """What a reader must know to read a frame's numbers right: resampling unit, failures, groups left out of RB,
    undefined RB, RB within noise, missing group values."""
    from ondevice_audit.metrics.frame import MISSING_GROUP

    notes = []
    if frame.speakers is None:
        notes.append(
            "no speaker column: the bootstrap and permutations resample clips, which treats clips of one speaker "
            "as independent, so intervals are too narrow and p-values too small"
        )
    if failed:
        notes.append(f"{failed} sample(s) could not be scored and are left out (see samples.failures)")
    for attribute in frame.attributes:
        left = [f"{g.name} ({g.left_out})" for g in attribute.groups if not g.in_rb]
        if left:
            notes.append(f"{attribute.name}: left out of RB (shown in the tables): {'; '.join(left)}")
        rb = attribute.rb
        if rb.value is None:
            notes.append(f"{attribute.name}: RB is undefined: {rb.undefined_reason}")
        elif rb.p_value is not None and rb.p_value > 1 - frame.confidence:
            notes.append(_within_noise(attribute.name, frame, rb))
        elif rb.bootstrap_undefined_share:
            notes.append(
                f"{attribute.name}: RB is undefined in {rb.bootstrap_undefined_share:.1%} of bootstrap resamples"
            )
        if any(g.name == MISSING_GROUP for g in attribute.groups):
            notes.append(f"{attribute.name}: some rows have no value; they form the group '{MISSING_GROUP}'")
        clashes = spelling_clashes(g.name for g in attribute.groups) if len(attribute.columns) == 1 else []
        if clashes:
            notes.append(
                f"{attribute.name}: values that differ only in spelling form separate groups: {_listed(clashes)}; "
                "fix the data if they are one group"
            )
    return notes


def _within_noise(name: str, frame: GroupMetricFrame | DetectionFrame, rb: BiasResult) -> str:
    """RB that shuffled groups reach as often: said with the noise floor, and RB's upward bias only where it
    applies (an RB near that floor); an RB of exactly 0 says the metric does not vary between groups at all."""
    from ondevice_audit.metrics.definitions import higher_is_better

    assert rb.value is not None and rb.p_value is not None
    metric = frame.metric
    if rb.value < 1e-12:
        best = 1.0 if higher_is_better(metric) else 0.0
        if frame.overall.get(metric) == best:
            return f"{name}: RB is 0 because {metric} is {best:g} for every group: no clip it counts went wrong"
        return (
            f"{name}: RB is 0: every group in RB has exactly the {metric} of all clips; check that the predictions "
            "vary (a model that always predicts one class scores alike for everyone)"
        )
    text = f"{name}: RB {rb.value:.3g} is not distinguishable from shuffled groups (p = {rb.p_value:.3g})"
    floor = rb.permutation_mean
    if floor is not None:
        text += f"; with shuffled groups RB is {floor:.3g} on average"
        if rb.value <= 2 * floor:
            text += ", and an RB this close to that floor is biased upwards: read it as no detectable bias"
    return text
