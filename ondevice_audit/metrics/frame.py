r"""``GroupMetricFrame``: per-group metrics and reliability bias, with speaker-clustered uncertainty.

Modelled on Fairlearn's ``MetricFrame``: one object, built once from labels, predictions and the group
columns, computing everything eagerly. For each *attribute* (one group column, and with two or more
columns their intersection) it reports, per group: clip count, speaker count, every metric, a bootstrap
confidence interval of the chosen metric and its signed :math:`\ln(P_g / P_{all})`; and for the attribute:
:math:`RB = \sum_g |\ln(P_g / P_{all})|` (see :mod:`ondevice_audit.metrics.bias`) with a percentile
bootstrap interval and a permutation p-value.

- :math:`P_{all}` is the metric over *all* scored clips, small groups included.
- Groups with fewer than ``min_group_size`` clips are shown but left out of RB (their estimate is noise).
- The bootstrap resamples speakers when a speaker column is given (see ``_resampling``), clips otherwise.
- The permutation test asks whether RB is larger than when group labels are shuffled across speakers
  (across clips without speakers): ``p = (1 + #{RB_perm >= RB}) / (1 + #perm)``.
- RB is undefined (None) where a log ratio is; the share of undefined replicates is reported, and an
  interval is given only when at least 90 % of replicates are defined.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import _resampling, defaults
from ondevice_audit.metrics._groups import MISSING_GROUP, GroupedAttribute, group_attributes
from ondevice_audit.metrics.bias import log_ratios, reliability_bias
from ondevice_audit.metrics.definitions import METRICS, compute_metric

__all__ = ["AttributeResult", "BiasResult", "GroupMetricFrame", "GroupResult", "MISSING_GROUP"]

_MIN_DEFINED_SHARE = 0.9

_BAD_METRIC = "unknown metric {name!r}; choose one of {choices}"
_BAD_BOOT = "the number of bootstrap resamples must be 0 (off) or at least 100, got {n}"
_BAD_PERM = "the number of permutations must be 0 (off) or at least 100, got {n}"
_BAD_CONFIDENCE = "confidence must be between 0 and 1, got {value}"
_NEEDS_NEGATIVES = (
    "metric {name} needs negative labels (--negative-labels) that occur in the data; found none of {negatives}"
)
_LENGTHS = "labels, predictions, groups and speakers must have the same length"


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
    """False for groups below ``min_group_size``, which are shown but left out of RB."""


@dataclass(frozen=True)
class BiasResult:
    value: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    undefined_reason: str | None = None
    bootstrap_undefined_share: float | None = None
    permutations_used: int = 0


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
    min_group_size, n_boot, n_perm, seed, confidence
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

    y_true: Sequence[object]
    y_pred: Sequence[object]
    sensitive_features: pd.DataFrame
    metric: str = defaults.METRIC
    speakers: Sequence[object] | None = None
    negative_labels: Sequence[str] = ()
    min_group_size: int = defaults.MIN_GROUP_SIZE
    n_boot: int = defaults.BOOTSTRAP
    n_perm: int = defaults.PERMUTATIONS
    seed: int = 0
    confidence: float = defaults.CONFIDENCE
    intersections: bool = True
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
        if self.speakers is not None:
            speaker_codes, self._speaker_names = pd.factorize(pd.Series(self.speakers, dtype=str))
            self._speaker = speaker_codes
        else:
            self._speaker = None
        overall_cm = np.bincount(self._cell, minlength=k * k).reshape(k, k)
        self.overall = self._all_metrics(overall_cm)
        self.overall_ci = self._overall_interval()
        self.attributes = [self._attribute_result(a) for a in group_attributes(self.sensitive_features, self.intersections)]

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
        if self._speaker is not None:
            per_speaker = _counts(self._speaker, self._cell, int(self._speaker.max()) + 1, k)
            replicates = _resampling.bootstrap_by_speaker(per_speaker[:, None], None, self.n_boot, rng)[:, 0]
        else:
            overall = np.bincount(self._cell, minlength=k * k).reshape(1, k, k)
            replicates = _resampling.bootstrap_by_cell(overall, self.n_boot, rng)[:, 0]
        return self._interval(self._chosen(replicates))

    def _attribute_result(self, attribute: GroupedAttribute) -> AttributeResult:
        k = len(self.labels)
        n_groups = len(attribute.names)
        per_group = _counts(attribute.codes, self._cell, n_groups, k)
        sizes = per_group.sum(axis=(1, 2))
        included = sizes >= self.min_group_size
        overall_cm = per_group.sum(axis=0)
        group_values = self._chosen(per_group)
        overall_value = self._chosen(overall_cm)
        ratios = log_ratios(group_values, overall_value)

        strata, resampling, per_speaker = None, "clips (no speaker column)", None
        if self._speaker is not None:
            n_speakers = int(self._speaker.max()) + 1
            per_speaker = _counts(self._speaker * n_groups + attribute.codes, self._cell, n_speakers * n_groups, k)
            per_speaker = per_speaker.reshape(n_speakers, n_groups, k, k)
            present = per_speaker.sum(axis=(2, 3)) > 0
            speakers_per_group = present.sum(axis=0)
            nested = bool((present.sum(axis=1) == 1).all())
            strata = present.argmax(axis=1) if nested else None
            resampling = (
                "speakers, stratified by group"
                if nested
                else "speakers, unstratified (some speakers span several groups); permutations shuffle clips"
            )
        else:
            speakers_per_group = None

        group_ci: list[tuple[float, float] | None] = [None] * n_groups
        rb = self._bias(group_values, overall_value, included, attribute)
        if self.n_boot:
            rng = self._rng(attribute.name, 1)
            if per_speaker is not None:
                replicates = _resampling.bootstrap_by_speaker(per_speaker, strata, self.n_boot, rng)
            else:
                replicates = _resampling.bootstrap_by_cell(per_group, self.n_boot, rng)
            rep_groups = self._chosen(replicates)
            rep_overall = self._chosen(replicates.sum(axis=1))
            group_ci = [self._interval(rep_groups[:, g]) for g in range(n_groups)]
            if rb.value is not None:
                rep_rb = reliability_bias(rep_groups[:, included], rep_overall)
                undefined = float(np.mean(~np.isfinite(rep_rb)))
                rb = BiasResult(rb.value, self._interval(rep_rb), None, None, undefined)
        if self.n_perm and rb.value is not None:
            rb = self._permutation_test(rb, attribute, included, per_speaker, strata)

        worst = None
        sign = 1.0 if METRICS[self.metric].higher_is_better else -1.0
        # only a group below the population is worse off; when every group equals it, nobody is
        shortfall = np.where(included, sign * (overall_value - group_values), np.nan)
        if np.isfinite(shortfall).any() and np.nanmax(shortfall) > 1e-12:
            worst = attribute.names[int(np.nanargmax(shortfall))]
        groups = [
            GroupResult(
                name=attribute.names[g],
                n=int(sizes[g]),
                n_speakers=None if speakers_per_group is None else int(speakers_per_group[g]),
                metrics=self._all_metrics(per_group[g]),
                ci=group_ci[g],
                log_ratio=_number(ratios[g]),
                in_rb=bool(included[g]),
            )
            for g in range(n_groups)
        ]
        return AttributeResult(attribute.name, attribute.columns, groups, rb, worst, resampling)

    def _bias(
        self, group_values: np.ndarray, overall_value: np.ndarray, included: np.ndarray, attribute: GroupedAttribute
    ) -> BiasResult:
        if included.sum() < 2:
            reason = f"fewer than two groups have at least {self.min_group_size} clips"
            return BiasResult(None, None, None, reason)
        if not overall_value > 0:
            return BiasResult(None, None, None, f"overall {self.metric} is {float(overall_value):.4g} (not positive)")
        bad = [attribute.names[g] for g in np.flatnonzero(included) if not group_values[g] > 0]
        if bad:
            return BiasResult(None, None, None, f"{self.metric} is not positive for group(s) {', '.join(bad)}")
        return BiasResult(_number(reliability_bias(group_values[included], overall_value)), None, None)

    def _permutation_test(
        self,
        rb: BiasResult,
        attribute: GroupedAttribute,
        included: np.ndarray,
        per_speaker: np.ndarray | None,
        strata: np.ndarray | None,
    ) -> BiasResult:
        k = len(self.labels)
        n_groups = len(attribute.names)
        rng = self._rng(attribute.name, 2)
        if per_speaker is not None and strata is not None:
            permuted = _resampling.permute_by_speaker(per_speaker.sum(axis=1), strata, n_groups, self.n_perm, rng)
        else:
            permuted = _resampling.permute_by_clip(attribute.codes, self._cell, n_groups, k, self.n_perm, rng)
        overall = self._chosen(permuted.sum(axis=1))
        null = reliability_bias(self._chosen(permuted)[:, included], overall)
        null = null[np.isfinite(null)]
        assert rb.value is not None
        p_value = (1 + int(np.sum(null >= rb.value - 1e-12))) / (1 + len(null)) if len(null) else None
        return BiasResult(rb.value, rb.ci, p_value, None, rb.bootstrap_undefined_share, len(null))

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


def _number(value: np.ndarray | float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
