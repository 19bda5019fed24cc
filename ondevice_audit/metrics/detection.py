r"""Wake-word detectors: one phrase, one probability, one cutoff for everyone, scored per group.

A detector's clips are *positives* (the phrase) and *negatives* (everything else: other words, confusable
words, background). At a threshold :math:`t` a clip is accepted when its probability :math:`s \ge t`, and per
group:

- ``tpr``: accepted positives / positives (the detection rate); ``frr`` = 1 - tpr;
- ``far``: accepted negatives / negatives (false accepts per negative clip);
- ``fa_per_hour``: accepted negatives / hours of negative audio (the audio the model heard, padding included);
- ``precision``: accepted positives / accepted clips;
- ``eer``: the equal error rate, where the group's FAR and FRR curves cross (threshold-free), with the
  crossing interpolated linearly between the two thresholds around it.

The threshold is chosen **once, on the whole population's negatives** (``--at-far F``: the lowest threshold at
which at most a share ``F`` of them is accepted; ``--at-fa-per-hour R`` likewise per hour) and applied to every
group: one deployed device has one cutoff. Its own uncertainty goes into the intervals: each bootstrap replicate
re-chooses it on the replicate's negatives. RB, its interval and its permutation test are as in
``GroupMetricFrame``: speakers are the resampling unit (stratified by group when each speaker is in one group),
clips without a speaker column; the permutation test shuffles groups at the population's threshold.

A group enters RB when the clips the metric rests on (positives for tpr/frr, negatives for far/fa_per_hour,
accepted clips for precision) number at least ``min_group_size`` and, with speakers, come from two or more
speakers: an interval over one speaker says nothing about a group.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import _resampling, defaults
from ondevice_audit.metrics._groups import MIN_SPEAKERS, GroupedAttribute, GroupLimit, group_attributes, speaker_codes
from ondevice_audit.metrics.bias import log_ratios, reliability_bias
from ondevice_audit.metrics.definitions import (
    _FN,
    _FP,
    _NEG_SECONDS,
    _TN,
    _TP,
    DETECTION_METRICS,
    DetectorMetric,
    _divide,
)
from ondevice_audit.metrics.frame import AttributeResult, BiasResult, GroupResult, bootstrapped, group_gap

__all__ = ["DETECTION_METRICS", "DetectionFrame", "DetectorMetric", "GroupCurve", "OperatingPoint", "equal_error_rate"]

_MIN_DEFINED_SHARE = 0.9
_CURVE_POINTS = 200
"""Most points a group's DET curve keeps in the report (its corners, evenly thinned beyond this)."""
_BLOCK = 20_000_000
"""Replicates x clips handled at once when thresholds are re-chosen (bounds memory on large corpora)."""


@dataclass(frozen=True)
class OperatingPoint:
    """How the one threshold is set: given, or chosen on the population's negatives."""

    threshold: float | None = None
    at_far: float | None = None
    at_fa_per_hour: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.threshold, self.at_far, self.at_fa_per_hour) if v is not None]
        if len(given) != 1:
            raise UsageError("give exactly one of --threshold, --at-far and --at-fa-per-hour")
        if not np.isfinite(given[0]):
            raise UsageError(f"the operating point must be a finite number, got {given[0]}")
        if self.at_far is not None and not 0 <= self.at_far <= 1:
            raise UsageError(f"--at-far is a share of negative clips in [0, 1], got {self.at_far}")
        if self.at_fa_per_hour is not None and self.at_fa_per_hour < 0:
            raise UsageError(f"--at-fa-per-hour must be 0 or more, got {self.at_fa_per_hour}")

    @classmethod
    def of(cls, threshold: float | None, at_far: float | None, at_fa_per_hour: float | None) -> OperatingPoint:
        """The point these settings name, at most one of them given; none given: the threshold 0.5."""
        given = (threshold, at_far, at_fa_per_hour)
        return cls(0.5) if given == (None, None, None) else cls(*given)

    @property
    def chosen(self) -> bool:
        return self.threshold is None

    def describe(self) -> str:
        if self.threshold is not None:
            return f"given: {self.threshold:g}"
        if self.at_far is not None:
            return f"the lowest threshold at which at most {self.at_far:g} of the population's negatives are accepted"
        return f"the lowest threshold with at most {self.at_fa_per_hour:g} false accepts per hour on the population"

    def choose(self, negative_scores: np.ndarray, weights: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """``[B]`` thresholds from ``weights[B, M]`` over the ``M`` negatives (``seconds[M]`` each)."""
        if self.threshold is not None:
            return np.full(len(weights), self.threshold)
        order = np.argsort(-negative_scores, kind="stable")
        values = negative_scores[order]
        accepted = np.cumsum(weights[:, order], axis=1)  # weight of negatives scoring >= values[j]
        last_of_value = np.append(values[1:] != values[:-1], True)  # a threshold accepts every tie
        accepted, values = accepted[:, last_of_value], values[last_of_value]
        if self.at_far is not None:
            allowed = self.at_far * weights.sum(axis=1)
        else:
            allowed = self.at_fa_per_hour * (weights * seconds).sum(axis=1) / 3600.0
        count = (accepted <= allowed[:, None] * (1 + 1e-12)).sum(axis=1)
        above_all = np.nextafter(values[0], np.inf)  # not even the highest negative may be accepted
        return np.where(count > 0, values[np.maximum(count - 1, 0)], above_all)


@dataclass(frozen=True)
class GroupCurve:
    """A group's threshold-free view: EER with its interval, and its DET curve (downsampled)."""

    name: str
    positives: int
    negatives: int
    eer: float | None
    eer_ci: tuple[float, float] | None
    det: list[tuple[float, float]]
    """(FAR, FRR) at thresholds from low to high."""
    fa_per_hour: list[float] | None
    """False accepts per hour at the same thresholds, when clip durations are known."""
    operating_point: tuple[float, float] | None
    """(FAR, FRR) at the population's threshold."""


def equal_error_rate(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``[B]`` EERs of one set of clips under ``weights[B, N]`` (NaN without positives or negatives)."""
    far, frr = _rates(scores, positive, weights)
    gap = frr - far  # rises from -1 (accept all) to 1 (reject all) as the threshold rises
    after = np.argmax(gap >= 0, axis=1)
    before = np.maximum(after - 1, 0)
    rows = np.arange(len(gap))
    g0, g1 = gap[rows, before], gap[rows, after]
    share = np.where(g1 > g0, -g0 / np.where(g1 > g0, g1 - g0, 1), 0.0)
    f0, f1 = frr[rows, before], frr[rows, after]
    return np.where(np.isfinite(gap).all(axis=1), f0 + share * (f1 - f0), np.nan)


def _rates(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAR and FRR ``[B, T]`` at every distinct score as the threshold, from -inf (accept all) to +inf."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    pos = weights[:, order] * positive[order]
    neg = weights[:, order] * ~positive[order]
    below_pos = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(pos, axis=1)], axis=1)
    below_neg = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(neg, axis=1)], axis=1)
    starts = np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1], [True]])  # a new value, or the end
    below_pos, below_neg = below_pos[:, starts], below_neg[:, starts]
    total_pos, total_neg = below_pos[:, -1:], below_neg[:, -1:]
    return _divide(total_neg - below_neg, total_neg), _divide(below_pos, total_pos)


def _corners(far: np.ndarray, frr: np.ndarray) -> np.ndarray:
    """The thresholds where the DET step function turns: between them only FAR (a run of negatives) or only FRR
    (a run of positives) moves, so straight lines between the corners draw the curve exactly, on any axes."""
    moves = np.stack([np.diff(far) != 0, np.diff(frr) != 0], axis=1)
    turns = np.flatnonzero((moves[1:] != moves[:-1]).any(axis=1)) + 1
    return np.unique(np.concatenate([[0], turns, [len(far) - 1]]))


@dataclass
class DetectionFrame:
    """Per-group detector metrics at one population threshold, RB with honest uncertainty, EER and DET curves.

    Parameters
    ----------
    positive
        Whether each clip is the phrase.
    scores
        The detector's probability for each clip (finite).
    sensitive_features, speakers, min_group_size, n_boot, n_perm, seed, confidence, intersections, max_groups
        As for ``GroupMetricFrame``.
    metric
        A key of ``DETECTION_METRICS``: the metric RB is computed on.
    point
        How the threshold is set.
    durations
        Seconds of audio each clip gave the model, for ``fa_per_hour`` (None: it is undefined).
    """

    positive: Sequence[bool] | np.ndarray
    scores: Sequence[float] | np.ndarray
    sensitive_features: pd.DataFrame
    point: OperatingPoint
    metric: str = "tpr"
    speakers: Sequence[object] | np.ndarray | None = None
    durations: Sequence[float] | np.ndarray | None = None
    min_group_size: int = defaults.MIN_GROUP_SIZE
    n_boot: int = defaults.BOOTSTRAP
    n_perm: int = defaults.PERMUTATIONS
    seed: int = 0
    confidence: float = defaults.CONFIDENCE
    intersections: bool = True
    max_groups: int = defaults.MAX_GROUPS
    threshold: float = field(init=False)
    threshold_ci: tuple[float, float] | None = field(init=False)
    overall: dict[str, float | None] = field(init=False)
    overall_ci: tuple[float, float] | None = field(init=False)
    attributes: list[AttributeResult] = field(init=False)
    curves: dict[str, list[GroupCurve]] = field(init=False)
    metric_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self._setup()
        # before any work: an id column given as a group would take hours
        attributes = group_attributes(self.sensitive_features, self.intersections, GroupLimit(self.max_groups))
        self.threshold = float(self.point.choose(self._scores[~self._pos], np.ones((1, self._negatives)),
                                                 self._seconds[~self._pos])[0])  # fmt: skip
        self._accepted = self._scores >= self.threshold
        everyone = np.zeros(len(self._scores), dtype=np.int64)
        stats = self._stats(everyone, 1, self._accepted[None, :], np.ones((1, len(self._scores))))[0, 0]
        self.overall = self._all_metrics(stats)
        self.overall["eer"] = _number(equal_error_rate(self._scores, self._pos, np.ones((1, len(self._pos))))[0])
        self.threshold_ci, self.overall_ci = self._overall_intervals()
        self.attributes, self.curves = [], {}
        for attribute in attributes:
            result, curves = self._attribute(attribute)
            self.attributes.append(result)
            self.curves[attribute.name] = curves

    # -- set-up --------------------------------------------------------------------------------------

    def _setup(self) -> None:
        if self.metric not in DETECTION_METRICS:
            raise UsageError(f"unknown detector metric {self.metric!r}; choose one of {', '.join(DETECTION_METRICS)}")
        if self.n_boot != 0 and self.n_boot < 100:
            raise UsageError(f"the number of bootstrap resamples must be 0 (off) or at least 100, got {self.n_boot}")
        if self.n_perm != 0 and self.n_perm < 100:
            raise UsageError(f"the number of permutations must be 0 (off) or at least 100, got {self.n_perm}")
        if not 0 < self.confidence < 1:
            raise UsageError(f"confidence must be between 0 and 1, got {self.confidence}")
        self._pos = np.asarray(self.positive, dtype=bool)
        self._scores = np.asarray(self.scores, dtype=np.float64)
        n = len(self._pos)
        lengths = {n, len(self._scores), len(self.sensitive_features)}
        lengths |= {len(x) for x in (self.speakers, self.durations) if x is not None}
        if len(lengths) != 1:
            raise UsageError("labels, scores, groups, speakers and durations must have the same length")
        if not np.isfinite(self._scores).all():
            raise UsageError("detector scores must be finite numbers")
        self._negatives = int((~self._pos).sum())
        if not self._pos.any():
            raise UsageError("no positive clip: the detection rate is undefined (is --positive-label right?)")
        if self.point.chosen and not self._negatives:
            raise UsageError("no negative clip: the false acceptance rate is undefined, so --at-far and "
                             "--at-fa-per-hour cannot choose a threshold; give --threshold")  # fmt: skip
        self._seconds = np.full(n, np.nan) if self.durations is None else np.asarray(self.durations, np.float64)
        if self.point.at_fa_per_hour is not None and not np.isfinite(self._seconds).all():
            raise UsageError("--at-fa-per-hour needs every clip's duration")
        self.metric_names = [m for m in DETECTION_METRICS if m != "fa_per_hour" or self.durations is not None]
        if self.metric not in self.metric_names:
            raise UsageError("fa_per_hour needs every clip's duration (a duration column, or audio files)")
        if self.speakers is not None:
            self._unit = speaker_codes(self.speakers)
        else:
            self._unit = np.arange(n)
        self._n_units = int(self._unit.max()) + 1 if n else 0

    def _rng(self, stream: str, purpose: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(stream.encode()), purpose, 7])

    # -- statistics ---------------------------------------------------------------------------------

    def _stats(self, codes: np.ndarray, n_groups: int, accepted: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``[B, G, 5]`` weighted statistics per group; ``accepted`` and ``weights`` are ``[B, N]``."""
        pos, neg = self._pos, ~self._pos
        columns = (accepted & pos, ~accepted & pos, accepted & neg, ~accepted & neg)
        onehot = np.zeros((len(codes), n_groups))
        onehot[np.arange(len(codes)), codes] = 1.0
        sums = [(weights * column) @ onehot for column in columns]
        sums.append((weights * np.where(neg, np.nan_to_num(self._seconds), 0.0)) @ onehot)
        stats = np.stack(sums, axis=-1)
        if not np.isfinite(self._seconds).all():
            stats[..., _NEG_SECONDS] = np.nan
        return stats

    def _all_metrics(self, stats: np.ndarray) -> dict[str, float | None]:
        return {name: _number(DETECTION_METRICS[name].function(stats)) for name in self.metric_names}

    def _chosen(self, stats: np.ndarray) -> np.ndarray:
        return DETECTION_METRICS[self.metric].function(stats)

    def _replicates(self, codes: np.ndarray, n_groups: int, unit_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[B, G, 5]`` statistics and ``[B]`` thresholds of the replicates ``unit_weights[B, U]`` draws, the
        threshold re-chosen in each (a given one stays)."""
        n_boot, n = len(unit_weights), len(self._scores)
        stats = np.empty((n_boot, n_groups, 5))
        thresholds = np.empty(n_boot)
        block = max(1, _BLOCK // max(n, 1))
        negative = ~self._pos
        for start in range(0, n_boot, block):
            weights = unit_weights[start : start + block][:, self._unit]
            chosen = self.point.choose(self._scores[negative], weights[:, negative], self._seconds[negative])
            accepted = self._scores[None, :] >= chosen[:, None]
            stats[start : start + block] = self._stats(codes, n_groups, accepted, weights)
            thresholds[start : start + block] = chosen
        return stats, thresholds

    def _interval(self, replicates: np.ndarray) -> tuple[float, float] | None:
        defined = replicates[np.isfinite(replicates)]
        if not len(defined) or len(defined) < _MIN_DEFINED_SHARE * len(replicates):
            return None
        alpha = 1 - self.confidence
        low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
        return float(low), float(high)

    def _overall_intervals(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        if not self.n_boot:
            return None, None
        weights = _resampling.speaker_weights(self._n_units, None, self.n_boot, self._rng("", 0))
        everyone = np.zeros(len(self._scores), dtype=np.int64)
        stats, thresholds = self._replicates(everyone, 1, weights)
        threshold_ci = self._interval(thresholds) if self.point.chosen else None
        return threshold_ci, self._interval(self._chosen(stats[:, 0]))

    # -- one attribute ------------------------------------------------------------------------------

    def _attribute(self, attribute: GroupedAttribute) -> tuple[AttributeResult, list[GroupCurve]]:
        n_groups = len(attribute.names)
        stats = self._stats(attribute.codes, n_groups, self._accepted[None, :], np.ones((1, len(self._scores))))[0]
        values, overall = self._chosen(stats), self._chosen(stats.sum(axis=0))
        unit_group, nested, speakers_per_group = self._units_per_group(attribute.codes, n_groups)
        support, reasons = self._left_out(stats, speakers_per_group)
        included = np.array([reason is None for reason in reasons], dtype=bool)
        rb = _bias(values, overall, included, attribute.names, self.metric, self.min_group_size)
        gap = group_gap(values, included, attribute.names)
        group_ci: list[tuple[float, float] | None] = [None] * n_groups
        weights = None
        if self.n_boot:
            weights = _resampling.speaker_weights(self._n_units, unit_group if nested else None, self.n_boot,
                                                  self._rng(attribute.name, 1))  # fmt: skip
            replicates, _ = self._replicates(attribute.codes, n_groups, weights)
            rep_values = self._chosen(replicates)
            group_ci = [self._interval(rep_values[:, g]) for g in range(n_groups)]
            rb, gap = bootstrapped(rb, gap, rep_values[:, included], self._chosen(replicates.sum(axis=1)), self._interval)
        if self.n_perm and rb.value is not None:
            rb = self._permutation_test(rb, attribute, included, unit_group if nested else None)
        resampling = ("speakers, stratified by group" if nested else "speakers, unstratified (some speakers span "
                      "several groups)") if self.speakers is not None else "clips (no speaker column)"  # fmt: skip
        ratios = log_ratios(values, overall)
        groups = [
            GroupResult(attribute.names[g], int((attribute.codes == g).sum()),
                        None if speakers_per_group is None else int(speakers_per_group[g]),
                        {**self._all_metrics(stats[g]), "eer": None}, group_ci[g], _number(ratios[g]),
                        bool(included[g]), int(support[g]), reasons[g])
            for g in range(n_groups)
        ]  # fmt: skip
        curves = self._curves(attribute, weights)
        for group, curve in zip(groups, curves, strict=True):
            group.metrics["eer"] = curve.eer
        worst = _worst(values, overall, included, attribute.names, DETECTION_METRICS[self.metric].higher_is_better)
        return AttributeResult(attribute.name, attribute.columns, groups, rb, worst, resampling, gap), curves

    def _units_per_group(
        self, codes: np.ndarray, n_groups: int
    ) -> tuple[np.ndarray, bool, np.ndarray | None]:
        """Each unit's group (when every unit is in one), whether that holds, and speakers per group."""
        present = np.zeros((self._n_units, n_groups), dtype=bool)
        present[self._unit, codes] = True
        nested = bool((present.sum(axis=1) == 1).all())
        per_group = present.sum(axis=0) if self.speakers is not None else None
        return present.argmax(axis=1), nested, per_group

    def _left_out(self, stats: np.ndarray, speakers: np.ndarray | None) -> tuple[np.ndarray, list[str | None]]:
        """Per group the clips the metric rests on (positives, negatives or accepted clips), and why a group is
        left out of RB (too few of them, or one speaker), or None for the groups in it."""
        basis = DETECTION_METRICS[self.metric].basis
        support = {"positives": stats[:, _TP] + stats[:, _FN], "negatives": stats[:, _FP] + stats[:, _TN],
                   "accepted": stats[:, _TP] + stats[:, _FP]}[basis]  # fmt: skip
        reasons: list[str | None] = []
        for g, used in enumerate(support):
            if used < self.min_group_size:
                reasons.append(f"{int(used)} {basis}, what {self.metric} uses: fewer than {self.min_group_size}")
            elif speakers is not None and speakers[g] < MIN_SPEAKERS:
                reasons.append(f"{int(speakers[g])} speaker: its interval would resample one voice")
            else:
                reasons.append(None)
        return support, reasons

    def _permutation_test(
        self, rb: BiasResult, attribute: GroupedAttribute, included: np.ndarray, unit_group: np.ndarray | None
    ) -> BiasResult:
        """Groups shuffled across speakers (across clips when speakers span groups) at the population threshold."""
        n_groups = len(attribute.names)
        rng = self._rng(attribute.name, 2)
        if unit_group is not None:
            units, groups = self._unit, unit_group
            n_units = self._n_units
        else:
            units, groups = np.arange(len(self._scores)), attribute.codes
            n_units = len(self._scores)
        per_unit = self._stats(units, n_units, self._accepted[None, :], np.ones((1, len(self._scores))))[0]
        permuted = _resampling.permute_totals(per_unit, groups, n_groups, self.n_perm, rng)
        null = reliability_bias(self._chosen(permuted)[:, included], self._chosen(permuted.sum(axis=1)))
        null = null[np.isfinite(null)]
        assert rb.value is not None
        if not len(null):
            return dataclasses.replace(rb, p_value=None, permutations_used=0)
        p_value = (1 + int(np.sum(null >= rb.value - 1e-12))) / (1 + len(null))
        return dataclasses.replace(rb, p_value=p_value, permutations_used=len(null),
                                   permutation_mean=float(null.mean()))  # fmt: skip

    def _curves(self, attribute: GroupedAttribute, weights: np.ndarray | None) -> list[GroupCurve]:
        curves = []
        for g, name in enumerate(attribute.names):
            members = attribute.codes == g
            scores, positive = self._scores[members], self._pos[members]
            ones = np.ones((1, int(members.sum())))
            eer = _number(equal_error_rate(scores, positive, ones)[0])
            eer_ci = None
            if weights is not None and eer is not None:
                eer_ci = self._interval(equal_error_rate(scores, positive, weights[:, self._unit[members]]))
            far, frr = (rates[0] for rates in _rates(scores, positive, ones))
            curves.append(GroupCurve(name, int(positive.sum()), int((~positive).sum()), eer, eer_ci,
                                     *self._det(far, frr, self._seconds[members][~positive]),
                                     self._operating_point(scores, positive)))  # fmt: skip
        return curves

    def _det(
        self, far: np.ndarray, frr: np.ndarray, negative_seconds: np.ndarray
    ) -> tuple[list[tuple[float, float]], list[float] | None]:
        keep = _corners(far, frr)
        if len(keep) > _CURVE_POINTS:
            keep = keep[np.unique(np.linspace(0, len(keep) - 1, _CURVE_POINTS).round().astype(int))]
        det = [(float(a), float(r)) for a, r in zip(np.nan_to_num(far[keep]), np.nan_to_num(frr[keep]), strict=True)]
        hours = float(negative_seconds.sum()) / 3600.0
        if not np.isfinite(hours) or hours <= 0:
            return det, None
        return det, [float(a * len(negative_seconds) / hours) for a in np.nan_to_num(far[keep])]

    def _operating_point(self, scores: np.ndarray, positive: np.ndarray) -> tuple[float, float] | None:
        accepted = scores >= self.threshold
        if not positive.any() or positive.all():
            return None
        return float(accepted[~positive].mean()), float((~accepted[positive]).mean())

    # -- what a reader must know ----------------------------------------------------------------------

    @property
    def y_true(self) -> np.ndarray:
        return np.where(self._pos, "positive", "negative")

    @property
    def counts(self) -> dict[str, int]:
        return {"positives": int(self._pos.sum()), "negatives": self._negatives}


def _bias(
    values: np.ndarray, overall: np.ndarray, included: np.ndarray, names: list[str], metric: str, min_size: int
) -> BiasResult:
    if included.sum() < 2:
        basis = DETECTION_METRICS[metric].basis
        return BiasResult(None, None, None, f"fewer than two groups have at least {min_size} {basis} and two speakers")
    if not overall > 0:
        return BiasResult(None, None, None, f"overall {metric} is {float(overall):.4g} (not positive)")
    bad = [names[g] for g in np.flatnonzero(included) if not values[g] > 0]
    if bad:
        return BiasResult(None, None, None, f"{metric} is not positive for group(s) {', '.join(bad)}")
    value = _number(reliability_bias(values[included], overall))
    groups = int(included.sum())
    return BiasResult(value, None, None, groups=groups, mean=None if value is None else value / groups)


def _worst(
    values: np.ndarray, overall: np.ndarray, included: np.ndarray, names: list[str], higher_is_better: bool
) -> str | None:
    sign = 1.0 if higher_is_better else -1.0
    shortfall = np.where(included, sign * (overall - values), np.nan)
    if np.isfinite(shortfall).any() and np.nanmax(shortfall) > 1e-12:
        return names[int(np.nanargmax(shortfall))]
    return None


def _number(value: np.ndarray | float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
