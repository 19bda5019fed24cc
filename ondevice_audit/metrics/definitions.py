r"""Classification metrics computed from confusion matrices, vectorised over leading axes.

Every metric the tool reports is a function of the confusion matrix ``cm[..., true, predicted]``, so a
thousand bootstrap replicates are one array operation rather than a thousand scikit-learn calls. Each
function matches scikit-learn on the rows the matrix was counted from (labels = those present in the true
or predicted values; ``zero_division=0``); the tests check that on random data.

With :math:`t_k` the true count of class :math:`k`, :math:`p_k` its predicted count, :math:`c` the
trace and :math:`s` the total:

- ``mcc``: :math:`(c s - \sum_k p_k t_k) / \sqrt{(s^2 - \sum_k p_k^2)(s^2 - \sum_k t_k^2)}` (Gorodkin's
  multiclass MCC, as the bias study used; 0 when a factor of the denominator is 0).
- ``frr``: share of keyword clips (true class not a negative label) predicted as a negative label.
- ``far``: share of negative clips (``_unknown_``, ``_silence_``...) predicted as a keyword.

``frr`` and ``far`` are errors (lower is better); the other metrics are higher-is-better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DETECTION_METRICS",
    "METRICS",
    "METRIC_ALIASES",
    "DetectorMetric",
    "MetricDefinition",
    "compute_metric",
    "higher_is_better",
    "metric_name",
]


def _totals(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    true = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    correct = np.diagonal(cm, axis1=-2, axis2=-1)
    total = true.sum(axis=-1)
    return true, predicted, correct, total


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def accuracy(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    _, _, correct, total = _totals(cm)
    return _divide(correct.sum(axis=-1), total)


def mcc(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    true, predicted, correct, total = _totals(cm)
    c = correct.sum(axis=-1)
    covariance = c * total - (predicted * true).sum(axis=-1)
    denominator = np.sqrt((total**2 - (predicted**2).sum(axis=-1)) * (total**2 - (true**2).sum(axis=-1)))
    value = _divide(covariance, denominator)
    return np.where((denominator == 0) & (total > 0), 0.0, value)


def _macro(per_class: np.ndarray, present: np.ndarray) -> np.ndarray:
    count = present.sum(axis=-1)
    return _divide(np.where(present, per_class, 0.0).sum(axis=-1), count)


def recall(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    true, predicted, correct, _ = _totals(cm)
    return _macro(np.nan_to_num(_divide(correct, true)), (true + predicted) > 0)


def precision(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    true, predicted, correct, _ = _totals(cm)
    return _macro(np.nan_to_num(_divide(correct, predicted)), (true + predicted) > 0)


def macro_f1(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    true, predicted, correct, _ = _totals(cm)
    return _macro(np.nan_to_num(_divide(2 * correct, true + predicted)), (true + predicted) > 0)


def balanced_accuracy(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    true, _, correct, _ = _totals(cm)
    return _macro(np.nan_to_num(_divide(correct, true)), true > 0)


def frr(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    keyword_rows = cm[..., ~negatives, :]
    return _divide(keyword_rows[..., negatives].sum(axis=(-1, -2)), keyword_rows.sum(axis=(-1, -2)))


def far(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    negative_rows = cm[..., negatives, :]
    return _divide(negative_rows[..., ~negatives].sum(axis=(-1, -2)), negative_rows.sum(axis=(-1, -2)))


def all_clips(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    return cm.sum(axis=(-1, -2))


def keyword_clips(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    return cm[..., ~negatives, :].sum(axis=(-1, -2))


def negative_clips(cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    return cm[..., negatives, :].sum(axis=(-1, -2))


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    description: str
    higher_is_better: bool
    function: Callable[[np.ndarray, np.ndarray], np.ndarray]
    needs_negatives: bool = False
    support: Callable[[np.ndarray, np.ndarray], np.ndarray] = all_clips
    """The clips the metric rests on, counted from a confusion matrix: a group's size for ``--min-group-size``."""
    support_name: str = "clips"


METRICS: dict[str, MetricDefinition] = {
    m.name: m
    for m in (
        MetricDefinition("mcc", "Matthews correlation coefficient (multiclass)", True, mcc),
        MetricDefinition("accuracy", "share of clips classified correctly", True, accuracy),
        MetricDefinition("balanced_accuracy", "mean per-class recall over true classes", True, balanced_accuracy),
        MetricDefinition("macro_f1", "unweighted mean F1 over classes", True, macro_f1),
        MetricDefinition("precision", "unweighted mean precision over classes", True, precision),
        MetricDefinition("macro_recall", "unweighted mean recall over classes (not a detection rate)", True, recall),
        MetricDefinition(
            "frr",
            "false rejection rate: keywords predicted as a negative label",
            False,
            frr,
            True,
            keyword_clips,
            "keyword clips",
        ),
        MetricDefinition(
            "far",
            "false acceptance rate: negatives predicted as a keyword",
            False,
            far,
            True,
            negative_clips,
            "negative clips",
        ),
    )
}


_TP, _FN, _FP, _TN, _NEG_SECONDS = range(5)
"""A detector's statistics, last axis: accepted and rejected positives, accepted and rejected negatives,
seconds of negative audio (``metrics/detection.py``)."""


@dataclass(frozen=True)
class DetectorMetric:
    name: str
    description: str
    higher_is_better: bool
    function: Callable[[np.ndarray], np.ndarray]
    """Of ``stats[..., 5]``: accepted positives, rejected positives, accepted negatives, rejected negatives,
    seconds of negative audio."""
    basis: str
    """The clips the value rests on: ``positives``, ``negatives`` or ``accepted``."""


DETECTION_METRICS: dict[str, DetectorMetric] = {
    m.name: m
    for m in (
        DetectorMetric("tpr", "detection rate: positives accepted", True,
                       lambda s: _divide(s[..., _TP], s[..., _TP] + s[..., _FN]), "positives"),
        DetectorMetric("frr", "false rejection rate: positives rejected", False,
                       lambda s: _divide(s[..., _FN], s[..., _TP] + s[..., _FN]), "positives"),
        DetectorMetric("far", "false acceptance rate: negatives accepted, per negative clip", False,
                       lambda s: _divide(s[..., _FP], s[..., _FP] + s[..., _TN]), "negatives"),
        DetectorMetric("fa_per_hour", "false accepts per hour of negative audio", False,
                       lambda s: _divide(s[..., _FP] * 3600.0, s[..., _NEG_SECONDS]), "negatives"),
        DetectorMetric("precision", "accepted clips that are positives", True,
                       lambda s: _divide(s[..., _TP], s[..., _TP] + s[..., _FP]), "accepted"),
    )
}  # fmt: skip


METRIC_ALIASES = {"recall": "macro_recall"}
"""Names accepted for a metric that is reported under another: ``recall`` was the macro recall's old name (a
detector's detection rate is ``tpr``)."""


def metric_name(name: str) -> str:
    """``name`` with an alias resolved."""
    return METRIC_ALIASES.get(name, name)


def higher_is_better(name: str) -> bool:
    """The direction of a classifier's or a detector's metric (the names they share agree on it)."""
    definition = METRICS.get(name) or DETECTION_METRICS[name]
    return definition.higher_is_better


def compute_metric(name: str, cm: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """``METRICS[name]`` on ``cm[..., K, K]``; NaN where undefined (e.g. no rows)."""
    return METRICS[name].function(cm.astype(np.float64, copy=False), negatives)
