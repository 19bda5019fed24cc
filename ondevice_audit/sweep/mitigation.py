"""What a mitigation changes: every mitigated cell against its unmitigated twin, with a paired bootstrap.

Pairs are finished cells equal in every factor but ``mitigation``: the ``none`` cell and the cell with the
level. A level's effect is the mean over its pairs of (mitigated minus none) in RB over the bias attribute
and in the metric. The interval is a paired speaker bootstrap on the cells' predictions: each replicate
draws the test speakers once (with replacement, within their group of the bias attribute when every speaker
is in one group, as the audit resamples) and applies that draw to both cells of every pair, which predicted
the same test clips; the shared sampling noise cancels. Without a speaker column clips are the units. The
interval covers which speakers were tested, not retraining noise: the seed noise floor speaks to that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from ondevice_audit.metrics.bias import reliability_bias
from ondevice_audit.metrics.definitions import compute_metric
from ondevice_audit.metrics.frame import MISSING_GROUP
from ondevice_audit.sweep.matrix import DataSettings

if TYPE_CHECKING:
    from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = ["MITIGATION_FACTOR", "MitigationEffect", "mitigation_effects"]

MITIGATION_FACTOR = "mitigation"
_REFERENCE = "none"
_MIN_DEFINED_SHARE = 0.9
"""Fewest replicates with a defined change for an interval (as the audit's paired intervals)."""
_PURPOSE = 7
"""Random stream id, distinct from the audit's streams drawn from the same seed."""


@dataclass(frozen=True)
class MitigationEffect:
    level: str
    pairs: tuple[tuple[str, str], ...]
    """(``none`` cell, mitigated cell) ids."""
    rb_change: float | None
    """Mean over pairs of RB(mitigated) - RB(none); negative: less biased."""
    rb_ci: tuple[float, float] | None
    metric_change: float | None
    metric_ci: tuple[float, float] | None
    resampling: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "pairs": [list(pair) for pair in self.pairs],
            "rb_change": self.rb_change,
            "rb_ci": list(self.rb_ci) if self.rb_ci else None,
            "metric_change": self.metric_change,
            "metric_ci": list(self.metric_ci) if self.metric_ci else None,
            "resampling": self.resampling,
        }


def mitigation_effects(
    results: pd.DataFrame,
    factors: Sequence[str],
    predictions: Callable[[str], pd.DataFrame],
    data: DataSettings,
    scoring: ClassifierTask | DetectorTask,
) -> tuple[MitigationEffect, ...]:
    """One effect per mitigation level that has a ``none`` twin; ``predictions(cell)`` reads a cell's
    predictions.csv (``path``, ``label``, the ``scoring`` task's output column, ``speaker`` and the group
    columns), all as strings."""
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    if MITIGATION_FACTOR not in ok.columns or ok[MITIGATION_FACTOR].nunique() < 2:
        return ()
    others = [f for f in factors if f != MITIGATION_FACTOR and f in ok.columns]
    twins: dict[str, list[tuple[str, str]]] = {}
    for _, group in ok.groupby(others, dropna=False, sort=False):
        reference = group.loc[group[MITIGATION_FACTOR] == _REFERENCE, "cell"]
        if reference.empty:
            continue
        for level, cell in zip(group[MITIGATION_FACTOR], group["cell"], strict=True):
            if level != _REFERENCE:
                twins.setdefault(str(level), []).append((str(reference.iloc[0]), str(cell)))
    loaded: dict[str, pd.DataFrame] = {}

    def load(cell: str) -> pd.DataFrame:
        if cell not in loaded:
            loaded[cell] = predictions(cell).astype({"path": str, "label": str})
        return loaded[cell]

    return tuple(_effect(level, tuple(pairs), load, data, scoring) for level, pairs in sorted(twins.items()))


def _effect(
    level: str,
    pairs: tuple[tuple[str, str], ...],
    load: Callable[[str], pd.DataFrame],
    data: DataSettings,
    scoring: ClassifierTask | DetectorTask,
) -> MitigationEffect:
    """The paired change; each cell's outputs become decisions as the task makes them (a detector: accept at
    its own operating point), counted per group and bootstrap replicate."""
    cells = list(dict.fromkeys(cell for pair in pairs for cell in pair))
    common = set.intersection(*(set(load(cell)["path"]) for cell in cells))
    base = load(cells[0])
    base = base[base["path"].isin(common)].sort_values("path", kind="stable").reset_index(drop=True)
    outputs = [load(cell).set_index("path").loc[base["path"], scoring.output_column].to_numpy() for cell in cells]
    decided = scoring.decided(base, outputs, scoring.resolve(data.score_options()))
    predicted = dict(zip(cells, decided.runs, strict=True))
    truth_names = decided.table["label"].to_numpy(str)
    labels = np.union1d(truth_names, np.unique(np.concatenate(list(predicted.values()))))
    k = len(labels)
    truth = np.searchsorted(labels, truth_names)
    negatives = np.isin(labels, list(decided.options.negative_labels))

    def metric_of(counts: np.ndarray) -> np.ndarray:
        if decided.metric_function is not None:
            return decided.metric_function(counts.astype(np.float64))
        return compute_metric(data.metric, counts, negatives)

    groups = base[data.bias_attribute].astype("string").fillna(MISSING_GROUP).astype(str).replace("", MISSING_GROUP)
    codes, names = pd.factorize(groups, sort=True)
    n_groups = len(names)
    included = np.bincount(codes, minlength=n_groups) >= data.min_group_size
    if "speaker" in base.columns:
        units = pd.factorize(base["speaker"].astype(str))[0]
        resampling = "paired speaker bootstrap"
    else:
        units = np.arange(len(base))
        resampling = "paired clip bootstrap (no speaker column)"
    weights = _weights(units, codes, data.bootstrap, np.random.default_rng([data.resampling_seed, _PURPOSE]))

    def scores(cell: str) -> tuple[np.ndarray, np.ndarray]:
        """RB and metric per replicate (row 0: the data as it is)."""
        column = codes * k * k + truth * k + np.searchsorted(labels, predicted[cell])
        per_unit = sparse.csr_matrix((np.ones(len(units)), (units, column)), shape=(weights.shape[1], n_groups * k * k))
        counts = np.asarray((per_unit.T @ weights.T).T).reshape(len(weights), n_groups, k, k)
        overall = metric_of(counts.sum(axis=1))
        if included.sum() < 2:
            return np.full(len(weights), np.nan), overall
        values = metric_of(counts)
        return reliability_bias(values[..., included], overall), overall

    scored = {cell: scores(cell) for cell in cells}
    rb = np.mean([scored[alt][0] - scored[ref][0] for ref, alt in pairs], axis=0)
    metric = np.mean([scored[alt][1] - scored[ref][1] for ref, alt in pairs], axis=0)
    return MitigationEffect(
        level, pairs, _number(rb[0]), _interval(rb[1:], data.confidence),
        _number(metric[0]), _interval(metric[1:], data.confidence), resampling,
    )  # fmt: skip


def _weights(units: np.ndarray, codes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[1 + n_boot, units]`` draw counts; row 0 is every unit once. Units are drawn within their group
    when each unit is in one group (so every group keeps its size), else across all units."""
    n_units = int(units.max()) + 1 if len(units) else 0
    weights = np.ones((1 + n_boot, n_units))
    group_of = pd.Series(codes).groupby(units).agg(["nunique", "first"])
    nested = bool((group_of["nunique"] == 1).all())
    strata = [np.arange(n_units)] if not nested else [np.flatnonzero(group_of["first"].to_numpy() == g)
                                                      for g in np.unique(group_of["first"])]  # fmt: skip
    for members in strata:
        if n_boot:
            weights[1:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=n_boot)
    return weights


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float, float] | None:
    defined = replicates[np.isfinite(replicates)]
    if not len(replicates) or len(defined) < _MIN_DEFINED_SHARE * len(replicates):
        return None
    alpha = 1 - confidence
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
