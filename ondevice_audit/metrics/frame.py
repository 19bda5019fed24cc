r"""``GroupMetricFrame``: per-group metrics and reliability bias, with speaker-clustered uncertainty.

Modelled on Fairlearn's ``MetricFrame``: one object, built once from labels, predictions and the group
columns, computing everything eagerly. For each *attribute* (one group column, and with two or more
columns their intersection) it reports, per group: clip count, speaker count, every metric, a bootstrap
confidence interval of the chosen metric and its signed :math:`\ln(P_g / P_{all})`; and for the attribute:
:math:`RB = \sum_g |\ln(P_g / P_{all})|` (see :mod:`ondevice_audit.metrics.bias`) with a percentile
bootstrap interval and a permutation p-value, RB's mean over the groups in it (the sum grows with the number
of groups; the mean compares attributes with different numbers of groups), and the largest gap between groups
(best minus worst metric), each with an interval.

- :math:`P_{all}` is the metric over *all* scored clips, small groups included.
- Groups are shown but left out of RB when the metric rests on fewer than ``min_group_size`` clips (FRR rests on
  the group's keyword clips, FAR on its negative clips, the others on all its clips), or, with a speaker column,
  when they have fewer than two speakers (their interval would resample one voice).
- The bootstrap resamples speakers when a speaker column is given (see ``_resampling``), clips otherwise.
- The permutation test asks whether RB is larger than when group labels are shuffled across speakers
  (across clips without speakers): ``p = (1 + #{RB_perm >= RB}) / (1 + #perm)``; the mean RB of the shuffles is
  RB's noise floor for these group sizes.
- RB is undefined (None) where a log ratio is; the share of undefined replicates is reported, and an
  interval is given only when at least 90 % of replicates are defined.
- An attribute with more than ``max_groups`` groups is refused: it is almost always an id column given as a
  group, and its tables would be unreadable anyway.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import _resampling, defaults
from ondevice_audit.metrics._groups import (
    MISSING_GROUP,
    GroupedAttribute,
    GroupLimit,
    group_attributes,
    left_out,
    speaker_codes,
)
from ondevice_audit.metrics.bias import log_ratios, reliability_bias
from ondevice_audit.metrics.definitions import METRICS, compute_metric

__all__ = ["AttributeResult", "BiasResult", "GapResult", "GroupMetricFrame", "GroupResult", "MISSING_GROUP", "bootstrapped", "group_gap"]

_MIN_DEFINED_SHARE = 0.9

_BAD_METRIC = "unknown metric {name!r}; choose one of {choices}"
_BAD_BOOT = "the number of bootstrap resamples must be 0 (off) or at least 100, got {n}"
_BAD_PERM = "the number of permutations must be 0 (off) or at least 100, got {n}"
_BAD_CONFIDENCE = "confidence must be between 0 and 1, got {value}"
_NEEDS_NEGATIVES = (
    "metric {name} needs negative labels (--negative-labels) that occur in the data; found none of {negatives}"
)
_LENGTHS = "labels, predictions, groups and speakers must have the same length"
_BAD_SEED = "the seed must be 0 or more, got {seed}"


@dataclass(frozen=True)
class GroupResult:
    name: str
    n: int
    n_speakers: int | None
    metrics: dict[str, float | None]
    """Every metric that is defined for this group, by name (None where undefined)."""
    ci: tuple[float, float] | None
    """Bootstrap interval of the chosen metric."""
    log_ratio: float | None
    """Signed ln(P_g / P_all) of the chosen metric; None where undefined."""
    in_rb: bool
    """False for groups left out of RB (too few clips for the metric, or one speaker); see ``left_out``."""
    support: int = 0
    """Clips the chosen metric rests on (FRR: keyword clips; FAR: negative clips; otherwise all of them)."""
    left_out: str | None = None
    """Why the group is not in RB, in words; None when it is."""


@dataclass(frozen=True)
class BiasResult:
    value: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    undefined_reason: str | None = None
    bootstrap_undefined_share: float | None = None
    permutations_used: int = 0
    groups: int = 0
    """Groups in RB: what ``mean`` divides by."""
    mean: float | None = None
    """RB divided by the number of groups in it: comparable between attributes with different numbers of
    groups (RB itself grows with them for the same per-group gaps)."""
    mean_ci: tuple[float, float] | None = None
    permutation_mean: float | None = None
    """RB's average over the permutations: what RB is when groups do not differ, for these group sizes."""


@dataclass(frozen=True)
class GapResult:
    """The largest gap between groups in RB: the best group's metric minus the worst's, in the metric's units."""

    value: float | None
    ci: tuple[float, float] | None
    high: str | None
    """The group with the highest metric."""
    low: str | None
    undefined_reason: str | None = None


@dataclass(frozen=True)
class AttributeResult:
    name: str
    columns: list[str]
    groups: list[GroupResult]
    rb: BiasResult
    worst_group: str | None
    """The included group furthest below the population on the chosen metric; None when no group is below."""
    resampling: str
    """How the bootstrap and permutations resampled, in words."""
    gap: GapResult = GapResult(None, None, None, None, "not computed")


@dataclass(frozen=True)
class _Design:
    """How an attribute's groups relate to speakers, and so how to resample them."""

    speakers_per_group: np.ndarray | None
    strata: np.ndarray | None
    """Each speaker's only group when every speaker is in one (the bootstrap is then stratified), else None."""
    per_speaker: sparse.csr_matrix | None
    """Clip counts per speaker and (group, true, predicted) cell: ``[S, G*K*K]``."""
    resampling: str


@dataclass
class GroupMetricFrame:
    """Per-group metrics and reliability bias for one set of predictions.

    Parameters
    ----------
    y_true, y_pred
        Labels and predictions (any hashable values; compared as strings).
    sensitive_features
        One column per grouping attribute (gender, age, accent...). Missing values form the group
        ``"(missing)"``.
    metric
        The metric RB is computed on (a key of ``METRICS``); every metric is reported per group anyway.
    speakers
        Speaker id per clip; makes the bootstrap and permutations resample speakers, not clips.
    negative_labels
        Classes that are not keywords (``_unknown_``, ``_silence_``), for FRR and FAR.
    min_group_size, n_boot, n_perm, seed, confidence, max_groups
        See the module docstring. ``n_boot``/``n_perm`` of 0 switch the bootstrap/permutation test off.
    intersections
        With two or more attributes, also report their intersection.

    Examples
    --------
    >>> frame = GroupMetricFrame(y_true=["a", "a", "b", "b"], y_pred=["a", "b", "b", "b"],
    ...     sensitive_features=pd.DataFrame({"g": ["x", "x", "y", "y"]}), metric="accuracy",
    ...     min_group_size=1, n_boot=0, n_perm=0)
    >>> frame.overall["accuracy"], [g.metrics["accuracy"] for g in frame.attributes[0].groups]
    (0.75, [0.5, 1.0])
    """

    y_true: Sequence[object] | np.ndarray
    y_pred: Sequence[object] | np.ndarray
    sensitive_features: pd.DataFrame
    metric: str = defaults.METRIC
    speakers: Sequence[object] | np.ndarray | None = None
    negative_labels: Sequence[str] = ()
    min_group_size: int = defaults.MIN_GROUP_SIZE
    n_boot: int = defaults.BOOTSTRAP
    n_perm: int = defaults.PERMUTATIONS
    seed: int = 0
    confidence: float = defaults.CONFIDENCE
    intersections: bool = True
    max_groups: int = defaults.MAX_GROUPS
    overall: dict[str, float | None] = field(init=False)
    overall_ci: tuple[float, float] | None = field(init=False)
    attributes: list[AttributeResult] = field(init=False)
    metric_names: list[str] = field(init=False)
    """The metrics defined on this data (FRR/FAR need negative labels present)."""

    def __post_init__(self) -> None:
        self._validate()
        y_true = np.asarray(self.y_true, dtype=str)
        y_pred = np.asarray(self.y_pred, dtype=str)
        self.labels = np.union1d(y_true, y_pred)
        k = len(self.labels)
        self._cell = np.searchsorted(self.labels, y_true) * k + np.searchsorted(self.labels, y_pred)
        self._negatives = np.isin(self.labels, [str(x) for x in self.negative_labels])
        has_negatives = bool(self._negatives.any()) and bool((~self._negatives).any())
        if METRICS[self.metric].needs_negatives and not has_negatives:
            raise UsageError(_NEEDS_NEGATIVES.format(name=self.metric, negatives=list(self.negative_labels)))
        self.metric_names = [m for m, d in METRICS.items() if has_negatives or not d.needs_negatives]
        self._speaker: np.ndarray | None = None
        self._speaker_totals: sparse.csr_matrix | None = None
        if self.speakers is not None:
            self._speaker = speaker_codes(self.speakers)
            self._speaker_totals = _sparse_counts(self._speaker, self._cell, int(self._speaker.max()) + 1, k * k)
        # before any work: an id column given as a group would take hours
        attributes = group_attributes(self.sensitive_features, self.intersections, GroupLimit(self.max_groups))
        overall_cm = np.bincount(self._cell, minlength=k * k).reshape(k, k)
        self.overall = self._all_metrics(overall_cm)
        self.overall_ci = self._overall_interval()
        self.attributes = [self._attribute_result(a) for a in attributes]

    # -- validation and set-up ----------------------------------------------------------------------

    def _validate(self) -> None:
        if self.metric not in METRICS:
            raise UsageError(_BAD_METRIC.format(name=self.metric, choices=", ".join(METRICS)))
        if self.n_boot != 0 and self.n_boot < 100:
            raise UsageError(_BAD_BOOT.format(n=self.n_boot))
        if self.n_perm != 0 and self.n_perm < 100:
            raise UsageError(_BAD_PERM.format(n=self.n_perm))
        if not 0 < self.confidence < 1:
            raise UsageError(_BAD_CONFIDENCE.format(value=self.confidence))
        if self.seed < 0:
            raise UsageError(_BAD_SEED.format(seed=self.seed))
        lengths = {len(self.y_true), len(self.y_pred), len(self.sensitive_features)}
        if self.speakers is not None:
            lengths.add(len(self.speakers))
        if len(lengths) != 1:
            raise UsageError(_LENGTHS)

    def _rng(self, stream: str, purpose: int) -> np.random.Generator:
        """One independent stream per (attribute, purpose) from the user's seed; keyed by the attribute's name,
        so adding a --group does not change the numbers of the others."""
        return np.random.default_rng([self.seed, zlib.crc32(stream.encode()), purpose])

    # -- computations -------------------------------------------------------------------------------

    def _all_metrics(self, cm: np.ndarray) -> dict[str, float | None]:
        return {name: _number(compute_metric(name, cm, self._negatives)) for name in self.metric_names}

    def _chosen(self, cms: np.ndarray) -> np.ndarray:
        return compute_metric(self.metric, cms, self._negatives)

    def _interval(self, replicates: np.ndarray) -> tuple[float, float] | None:
        defined = replicates[np.isfinite(replicates)]
        if len(defined) < _MIN_DEFINED_SHARE * len(replicates) or not len(defined):
            return None
        alpha = 1 - self.confidence
        low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
        return float(low), float(high)

    def _overall_interval(self) -> tuple[float, float] | None:
        if not self.n_boot:
            return None
        k = len(self.labels)
        rng = self._rng("", 0)
        if self._speaker_totals is not None:
            _, overall = _resampling.bootstrap_by_speaker(self._speaker_totals, (1, k), None, self.n_boot, rng,
                                                          self._chosen)  # fmt: skip
        else:
            counts = np.bincount(self._cell, minlength=k * k).reshape(1, k, k)
            _, overall = _resampling.bootstrap_by_cell(counts, self.n_boot, rng, self._chosen)
        return self._interval(overall)

    def _design(self, attribute: GroupedAttribute) -> _Design:
        """Speakers per group, and whether each speaker is in one group (the bootstrap is then stratified)."""
        if self._speaker is None:
            return _Design(None, None, None, "clips (no speaker column)")
        n_groups, k = len(attribute.names), len(self.labels)
        pairs = np.unique(self._speaker.astype(np.int64) * n_groups + attribute.codes)
        speakers_per_group = np.bincount(pairs % n_groups, minlength=n_groups)
        n_speakers = int(self._speaker.max()) + 1
        nested = bool((np.bincount(pairs // n_groups, minlength=n_speakers) == 1).all())
        strata = None
        if nested:
            strata = np.empty(n_speakers, dtype=np.int64)
            strata[pairs // n_groups] = pairs % n_groups
        cells = attribute.codes.astype(np.int64) * k * k + self._cell
        per_speaker = _sparse_counts(self._speaker, cells, n_speakers, n_groups * k * k)
        resampling = (
            "speakers, stratified by group"
            if nested
            else "speakers, unstratified (some speakers span several groups); permutations shuffle clips"
        )
        return _Design(speakers_per_group, strata, per_speaker, resampling)

    def _attribute_result(self, attribute: GroupedAttribute) -> AttributeResult:
        k, n_groups = len(self.labels), len(attribute.names)
        per_group = _counts(attribute.codes, self._cell, n_groups, k)
        group_values = self._chosen(per_group)
        overall_value = self._chosen(per_group.sum(axis=0))
        design = self._design(attribute)
        reasons = left_out(per_group, design.speakers_per_group, self.metric, self._negatives, self.min_group_size)
        included = np.array([reason is None for reason in reasons], dtype=bool)
        rb = self._bias(group_values, overall_value, included, attribute)
        gap = group_gap(group_values, included, attribute.names)
        group_ci: list[tuple[float, float] | None] = [None] * n_groups
        if self.n_boot:
            rep_groups, rep_overall = self._bootstrap(attribute, per_group, design)
            group_ci = [self._interval(rep_groups[:, g]) for g in range(n_groups)]
            rb, gap = bootstrapped(rb, gap, rep_groups[:, included], rep_overall, self._interval)
        if self.n_perm and rb.value is not None:
            rb = self._permutation_test(rb, attribute, included, design, overall_value)
        support = METRICS[self.metric].support(per_group.astype(np.float64), self._negatives)
        groups = [
            GroupResult(
                name=attribute.names[g],
                n=int(per_group[g].sum()),
                n_speakers=None if design.speakers_per_group is None else int(design.speakers_per_group[g]),
                metrics=self._all_metrics(per_group[g]),
                ci=group_ci[g],
                log_ratio=_number(log_ratios(group_values, overall_value)[g]),
                in_rb=bool(included[g]),
                support=int(support[g]),
                left_out=reasons[g],
            )
            for g in range(n_groups)
        ]
        worst = self._worst(group_values, overall_value, included, attribute.names)
        return AttributeResult(attribute.name, attribute.columns, groups, rb, worst, design.resampling, gap)

    def _worst(
        self, group_values: np.ndarray, overall_value: np.ndarray, included: np.ndarray, names: list[str]
    ) -> str | None:
        """The included group furthest below everyone; None when no group is below (then nobody is worse off)."""
        sign = 1.0 if METRICS[self.metric].higher_is_better else -1.0
        shortfall = np.where(included, sign * (overall_value - group_values), np.nan)
        if np.isfinite(shortfall).any() and np.nanmax(shortfall) > 1e-12:
            return names[int(np.nanargmax(shortfall))]
        return None

    def _bootstrap(
        self, attribute: GroupedAttribute, per_group: np.ndarray, design: _Design
    ) -> tuple[np.ndarray, np.ndarray]:
        """``[n_boot, G]`` metric replicates per group and ``[n_boot]`` over everyone."""
        rng = self._rng(attribute.name, 1)
        if design.per_speaker is not None:
            shape = (len(attribute.names), len(self.labels))
            return _resampling.bootstrap_by_speaker(design.per_speaker, shape, design.strata, self.n_boot, rng,
                                                    self._chosen)  # fmt: skip
        return _resampling.bootstrap_by_cell(per_group, self.n_boot, rng, self._chosen)


    def _bias(
        self, group_values: np.ndarray, overall_value: np.ndarray, included: np.ndarray, attribute: GroupedAttribute
    ) -> BiasResult:
        if included.sum() < 2:
            support = METRICS[self.metric].support_name
            reason = f"fewer than two groups have at least {self.min_group_size} {support}"
            if self._speaker is not None:
                reason += " and two speakers"
            return BiasResult(None, None, None, reason)
        if not overall_value > 0:
            return BiasResult(None, None, None, f"overall {self.metric} is {float(overall_value):.4g} (not positive)")
        bad = [attribute.names[g] for g in np.flatnonzero(included) if not group_values[g] > 0]
        if bad:
            return BiasResult(None, None, None, f"{self.metric} is not positive for group(s) {', '.join(bad)}")
        value = _number(reliability_bias(group_values[included], overall_value))
        groups = int(included.sum())
        mean = None if value is None else value / groups
        return BiasResult(value, None, None, groups=groups, mean=mean)

    def _permutation_test(
        self,
        rb: BiasResult,
        attribute: GroupedAttribute,
        included: np.ndarray,
        design: _Design,
        overall_value: np.ndarray,
    ) -> BiasResult:
        shape = (len(attribute.names), len(self.labels))
        rng = self._rng(attribute.name, 2)
        if self._speaker_totals is not None and design.strata is not None:
            permuted = _resampling.permute_by_speaker(self._speaker_totals, design.strata, shape, self.n_perm, rng,
                                                      self._chosen)  # fmt: skip
        else:
            permuted = _resampling.permute_by_clip(attribute.codes, self._cell, shape, self.n_perm, rng, self._chosen)
        null = reliability_bias(permuted[:, included], overall_value)
        null = null[np.isfinite(null)]
        assert rb.value is not None
        if not len(null):
            return dataclasses.replace(rb, p_value=None, permutations_used=0)
        p_value = (1 + int(np.sum(null >= rb.value - 1e-12))) / (1 + len(null))
        return dataclasses.replace(
            rb, p_value=p_value, permutations_used=len(null), permutation_mean=float(null.mean())
        )

    # -- views --------------------------------------------------------------------------------------

    @property
    def by_group(self) -> pd.DataFrame:
        """One row per (attribute, group): n, speakers, every metric, CI and log ratio of the chosen one."""
        rows = []
        for attribute in self.attributes:
            for group in attribute.groups:
                ci = group.ci or (None, None)
                rows.append(
                    {
                        "attribute": attribute.name,
                        "group": group.name,
                        "n": group.n,
                        "speakers": group.n_speakers,
                        **group.metrics,
                        f"{self.metric}_ci_low": ci[0],
                        f"{self.metric}_ci_high": ci[1],
                        "log_ratio": group.log_ratio,
                        "in_rb": group.in_rb,
                    }
                )
        return pd.DataFrame(rows).set_index(["attribute", "group"])

    @property
    def rb(self) -> pd.Series:
        """RB per attribute (NaN where undefined)."""
        return pd.Series(
            {a.name: np.nan if a.rb.value is None else a.rb.value for a in self.attributes}, name="rb", dtype=float
        )


def _counts(group: np.ndarray, cell: np.ndarray, n_groups: int, n_classes: int) -> np.ndarray:
    """Clip counts per (group, true, predicted): ``[G, K, K]``."""
    n_cells = n_classes * n_classes
    return np.bincount(group * n_cells + cell, minlength=n_groups * n_cells).reshape(n_groups, n_classes, n_classes)


def _sparse_counts(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sparse.csr_matrix:
    """Clip counts per (row, column) as a sparse matrix: a speaker has clips in few of the cells."""
    ones = np.ones(len(rows), dtype=np.float64)
    return sparse.csr_matrix((ones, (rows, columns)), shape=(n_rows, n_columns))


def bootstrapped(
    rb: BiasResult,
    gap: GapResult,
    rep_included: np.ndarray,
    rep_overall: np.ndarray,
    interval: Callable[[np.ndarray], tuple[float, float] | None],
) -> tuple[BiasResult, GapResult]:
    """RB, RB per group and the gap with their intervals, from bootstrap replicates ``[B, G]`` of the groups in
    RB and ``[B]`` over everyone (the same for a classifier's frame and a detector's)."""
    if gap.value is not None:
        gap = dataclasses.replace(gap, ci=interval(rep_included.max(axis=1) - rep_included.min(axis=1)))
    if rb.value is None:
        return rb, gap
    rep_rb = reliability_bias(rep_included, rep_overall)
    ci = interval(rep_rb)
    mean_ci = None if ci is None else (ci[0] / rb.groups, ci[1] / rb.groups)
    undefined = float(np.mean(~np.isfinite(rep_rb)))
    return dataclasses.replace(rb, ci=ci, mean_ci=mean_ci, bootstrap_undefined_share=undefined), gap


def group_gap(values: np.ndarray, included: np.ndarray, names: list[str]) -> GapResult:
    """Best minus worst metric over the groups in RB."""
    chosen = np.flatnonzero(included)
    if len(chosen) < 2:
        return GapResult(None, None, None, None, "fewer than two groups in RB")
    undefined = [names[g] for g in chosen if not np.isfinite(values[g])]
    if undefined:
        return GapResult(None, None, None, None, f"the metric is undefined for group(s) {', '.join(undefined)}")
    high, low = chosen[np.argmax(values[chosen])], chosen[np.argmin(values[chosen])]
    gap = float(values[high] - values[low])
    if gap <= 1e-12:  # every group alike: no group is highest or lowest
        return GapResult(0.0, None, None, None)
    return GapResult(gap, None, names[high], names[low])


def _number(value: np.ndarray | float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
