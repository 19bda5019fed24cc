r"""Disparity between runs: the same clips predicted by one model on several targets or runtimes, or by a
compressed model and its base.

The first run is the *reference*. Per group of each attribute (as in ``GroupMetricFrame``: each column, and
with two or more their intersection) and for every run:

- the chosen metric;
- *flips*: clips whose predicted label differs from the reference's (flip rate = flips / n). Two runtimes can
  agree on accuracy and still disagree on which clips they get right; flips see that;
- *forgotten*: clips the reference got right and this run gets wrong (share = forgotten / n), next to how many
  the reference got right, so a compressed model's losses can be read per group.

Per attribute: :math:`RB` on every run and :math:`RB_{run} - RB_{reference}` with a *paired* bootstrap interval.
Each replicate draws one resample of speakers (clips when there is no speaker column) and applies it to every
run, so the runs are compared on the same clips and the noise they share cancels: the interval is much
narrower than comparing two independent RB intervals, and 0 inside it means no detectable change.

The units of resampling follow ``GroupMetricFrame``: speakers, stratified by group when each speaker is in one
group. Without speakers, clips are drawn i.i.d. within each group, with their predictions on all runs kept
together: a multinomial draw over the group's distinct (true label, prediction on each run) combinations.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import _resampling, defaults
from ondevice_audit.metrics._groups import GroupedAttribute, group_attributes, left_out, speaker_codes
from ondevice_audit.metrics._resampling import MEMORY_BYTES
from ondevice_audit.metrics.bias import reliability_bias
from ondevice_audit.metrics.definitions import METRICS, compute_metric

__all__ = ["AttributeDisparity", "BiasDifference", "DisparityFrame", "GroupDisparity"]

_MIN_DEFINED_SHARE = 0.9
_PURPOSE = 3
"""Random stream id, distinct from the streams ``GroupMetricFrame`` draws from the same seed."""


@dataclass(frozen=True)
class GroupDisparity:
    name: str
    n: int
    n_speakers: int | None
    in_rb: bool
    reference_correct: int
    """Clips of this group the reference run classifies correctly."""
    values: list[float | None]
    """The chosen metric on each run (None where undefined)."""
    flips: list[int]
    """Per run: clips predicted differently from the reference (0 for the reference)."""
    forgotten: list[int]
    """Per run: clips the reference gets right and this run gets wrong (0 for the reference)."""

    def flip_rate(self, run: int) -> float:
        return self.flips[run] / self.n

    def forgotten_share(self, run: int) -> float:
        return self.forgotten[run] / self.n


@dataclass(frozen=True)
class BiasDifference:
    rb: float | None
    """RB of this run (None where undefined)."""
    difference: float | None
    """RB of this run minus RB of the reference; None for the reference or where either is undefined."""
    ci: tuple[float, float] | None
    """Paired bootstrap interval of ``difference``."""
    bootstrap_undefined_share: float | None = None


@dataclass(frozen=True)
class AttributeDisparity:
    name: str
    columns: list[str]
    resampling: str
    groups: list[GroupDisparity]
    rb: list[BiasDifference]
    """One per run, in run order."""


@dataclass
class DisparityFrame:
    """Per-group agreement between runs and the paired change in RB.

    Parameters
    ----------
    y_true
        True labels of the clips every run scored.
    predictions
        One sequence of predicted labels per run, aligned with ``y_true``; the first is the reference.
    sensitive_features, metric, speakers, negative_labels, min_group_size, n_boot, seed, confidence, intersections
        As for ``GroupMetricFrame`` (``n_boot`` 0 switches the intervals off).

    Examples
    --------
    >>> frame = DisparityFrame(y_true=["a", "a", "b", "b"], predictions=[["a", "a", "b", "b"], ["a", "b", "b", "a"]],
    ...     sensitive_features=pd.DataFrame({"g": ["x", "x", "y", "y"]}), metric="accuracy",
    ...     min_group_size=1, n_boot=0)
    >>> [(g.name, g.flips[1], g.forgotten[1]) for g in frame.attributes[0].groups]
    [('x', 1, 1), ('y', 1, 1)]
    """

    y_true: Sequence[object] | np.ndarray
    predictions: Sequence[Sequence[object] | np.ndarray]
    sensitive_features: pd.DataFrame
    metric: str = defaults.METRIC
    speakers: Sequence[object] | np.ndarray | None = None
    negative_labels: Sequence[str] = ()
    min_group_size: int = defaults.MIN_GROUP_SIZE
    n_boot: int = defaults.BOOTSTRAP
    seed: int = 0
    confidence: float = defaults.CONFIDENCE
    intersections: bool = True
    metric_function: Callable[[np.ndarray], np.ndarray] | None = None
    """Computes ``metric`` from confusion matrices ``[..., K, K]`` instead of ``METRICS`` (a detector's metrics)."""
    metric_support: tuple[Callable[[np.ndarray], np.ndarray], str] | None = None
    """With ``metric_function``: the clips it rests on, counted from confusion matrices, and their name (which
    groups have enough for RB); None: every clip."""
    overall: GroupDisparity = field(init=False)
    attributes: list[AttributeDisparity] = field(init=False)

    def __post_init__(self) -> None:
        self._validate()
        truth = np.asarray(self.y_true, dtype=str)
        predicted = np.stack([np.asarray(p, dtype=str) for p in self.predictions])
        self.labels = np.union1d(truth, np.unique(predicted))
        k = len(self.labels)
        self._true = np.searchsorted(self.labels, truth)
        self._pred = np.searchsorted(self.labels, predicted)
        self._cells = self._true[None, :] * k + self._pred
        self._negatives = np.isin(self.labels, [str(x) for x in self.negative_labels])
        if self.metric_function is None and METRICS[self.metric].needs_negatives and not (
            self._negatives.any() and (~self._negatives).any()
        ):
            raise UsageError(f"metric {self.metric} needs negative labels that occur in the data")
        self._speaker: np.ndarray | None = None
        if self.speakers is not None:
            self._speaker = speaker_codes(self.speakers)
        everyone = np.zeros(len(truth), dtype=np.int64)
        overall_cms = self._per_group(everyone, 1)
        n_speakers = None if self._speaker is None else int(len(np.unique(self._speaker)))
        self.overall = self._group("all", everyone == 0, n_speakers, True, self._chosen(overall_cms)[:, 0])
        self.attributes = [self._attribute(a) for a in group_attributes(self.sensitive_features, self.intersections)]

    def _validate(self) -> None:
        if self.metric not in METRICS and self.metric_function is None:
            raise UsageError(f"unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        if not self.predictions:
            raise UsageError("compare at least one run")
        if self.n_boot != 0 and self.n_boot < 100:
            raise UsageError(f"the number of bootstrap resamples must be 0 (off) or at least 100, got {self.n_boot}")
        if not 0 < self.confidence < 1:
            raise UsageError(f"confidence must be between 0 and 1, got {self.confidence}")
        lengths = {len(self.y_true), len(self.sensitive_features), *(len(p) for p in self.predictions)}
        if self.speakers is not None:
            lengths.add(len(self.speakers))
        if len(lengths) != 1:
            raise UsageError("labels, every run's predictions, groups and speakers must have the same length")

    # -- computations -------------------------------------------------------------------------------

    def _per_group(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Clip counts per (run, group, true, predicted): ``[T, G, K, K]``."""
        k2 = len(self.labels) ** 2
        counts = [np.bincount(codes * k2 + cells, minlength=n_groups * k2) for cells in self._cells]
        return np.stack(counts).reshape(len(self._cells), n_groups, len(self.labels), len(self.labels))

    def _chosen(self, cms: np.ndarray) -> np.ndarray:
        if self.metric_function is not None:
            return self.metric_function(cms.astype(np.float64))
        return compute_metric(self.metric, cms, self._negatives)

    def _rb(self, values: np.ndarray, overall: np.ndarray, included: np.ndarray) -> np.ndarray:
        """RB over the included groups (last axis of ``values``); NaN with fewer than two of them."""
        if included.sum() < 2:
            return np.full(np.shape(overall), np.nan)
        return reliability_bias(values[..., included], overall)

    def _group(
        self, name: str, members: np.ndarray, n_speakers: int | None, in_rb: bool, values: np.ndarray
    ) -> GroupDisparity:
        truth = self._true[members]
        predicted = self._pred[:, members]
        reference_right = predicted[0] == truth
        return GroupDisparity(
            name=name,
            n=int(members.sum()),
            n_speakers=n_speakers,
            in_rb=in_rb,
            reference_correct=int(reference_right.sum()),
            values=[_number(v) for v in values],
            flips=[int((p != predicted[0]).sum()) for p in predicted],
            forgotten=[int((reference_right & (p != truth)).sum()) for p in predicted],
        )

    def _attribute(self, attribute: GroupedAttribute) -> AttributeDisparity:
        n_groups = len(attribute.names)
        per_group = self._per_group(attribute.codes, n_groups)
        values = self._chosen(per_group)
        overall = self._chosen(per_group.sum(axis=1))

        speakers_per_group: np.ndarray | None = None
        strata: np.ndarray | None = None
        resampling = "clips (no speaker column)"
        if self._speaker is not None:
            n_speakers = int(self._speaker.max()) + 1
            pairs = np.unique(self._speaker.astype(np.int64) * n_groups + attribute.codes)
            speakers_per_group = np.bincount(pairs % n_groups, minlength=n_groups)
            nested = bool((np.bincount(pairs // n_groups, minlength=n_speakers) == 1).all())
            if nested:
                strata = np.empty(n_speakers, dtype=np.int64)
                strata[pairs // n_groups] = pairs % n_groups
            resampling = "speakers, stratified by group" if nested else "speakers, unstratified (some span groups)"
        # the reference run decides which groups are in RB, as GroupMetricFrame does for the audited one
        support = self.metric_support
        if support is None and self.metric_function is not None:
            support = (lambda cms: cms.sum(axis=(-1, -2)), "clips")
        reasons = left_out(per_group[0], speakers_per_group, self.metric, self._negatives, self.min_group_size,
                           support)  # fmt: skip
        included = np.array([reason is None for reason in reasons], dtype=bool)
        rb = self._rb(values, overall, included)

        differences = [BiasDifference(_number(rb[0]), None, None)]
        if self.n_boot:
            replicates = self._paired_rb(attribute, included, strata)
            for run in range(1, len(self._cells)):
                differences.append(self._difference(rb[run], rb[0], replicates[:, run] - replicates[:, 0]))
        else:
            differences += [
                BiasDifference(_number(rb[run]), _number(rb[run] - rb[0]), None) for run in range(1, len(self._cells))
            ]
        groups = [
            self._group(
                name,
                attribute.codes == g,
                None if speakers_per_group is None else int(speakers_per_group[g]),
                bool(included[g]),
                values[:, g],
            )
            for g, name in enumerate(attribute.names)
        ]
        return AttributeDisparity(attribute.name, attribute.columns, resampling, groups, differences)

    def _difference(self, rb: float, reference: float, replicates: np.ndarray) -> BiasDifference:
        if not (np.isfinite(rb) and np.isfinite(reference)):
            return BiasDifference(_number(rb), None, None)
        defined = replicates[np.isfinite(replicates)]
        undefined = float(1 - len(defined) / len(replicates))
        ci = None
        if len(defined) and len(defined) >= _MIN_DEFINED_SHARE * len(replicates):
            alpha = 1 - self.confidence
            low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
            ci = (float(low), float(high))
        return BiasDifference(float(rb), float(rb - reference), ci, undefined)

    def _paired_rb(self, attribute: GroupedAttribute, included: np.ndarray, strata: np.ndarray | None) -> np.ndarray:
        """``[n_boot, runs]`` RB replicates, every run resampled with the same draw."""
        rng = np.random.default_rng([self.seed, zlib.crc32(attribute.name.encode()), _PURPOSE])
        n_groups, k = len(attribute.names), len(self.labels)
        if self._speaker is not None:  # units are speakers; each clip counts in its speaker's row
            weights = _resampling.speaker_weights(int(self._speaker.max()) + 1, strata, self.n_boot, rng)
            rows = self._speaker
            columns = [attribute.codes * k * k + cells for cells in self._cells]
        else:  # units are the distinct (group, true, prediction on each run) combinations, one row each
            combos, counts = np.unique(np.stack([attribute.codes, self._true, *self._pred]), axis=1, return_counts=True)
            weights = _clip_weights(combos[0], counts, self.n_boot, rng)
            rows = np.arange(combos.shape[1])
            columns = [combos[0] * k * k + combos[1] * k + predicted for predicted in combos[2:]]
        rb = np.empty((self.n_boot, len(self._cells)))
        step = max(1, MEMORY_BYTES // (8 * n_groups * k * k))  # replicates' confusion matrices built at once
        for run, column in enumerate(columns):
            per_unit = sparse.csr_matrix(
                (np.ones(len(rows)), (rows, column)), shape=(weights.shape[1], n_groups * k * k)
            ).T.tocsr()
            for start in range(0, self.n_boot, step):
                part = weights[start : start + step]
                replicates = np.asarray(per_unit @ part.T).T.reshape(len(part), n_groups, k, k)
                rb[start : start + len(part), run] = self._rb(
                    self._chosen(replicates), self._chosen(replicates.sum(axis=1)), included
                )
        return rb


def _clip_weights(unit_group: np.ndarray, counts: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, combinations]``: each group's clips drawn i.i.d., as a multinomial over its combinations."""
    weights = np.zeros((n_boot, len(counts)))
    for g in np.unique(unit_group):
        members = np.flatnonzero(unit_group == g)
        n = int(counts[members].sum())
        weights[:, members] = rng.multinomial(n, counts[members] / n, size=n_boot)
    return weights


def _number(value: float | np.floating) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
