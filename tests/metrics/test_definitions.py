"""Every metric against scikit-learn on random data, including groups that miss some classes."""

import numpy as np
import pytest
from sklearn import metrics as skm

from ondevice_audit.metrics import METRICS, compute_metric

LABELS = np.array(["_unknown_", "down", "go", "no", "up", "yes"])
NEGATIVES = LABELS == "_unknown_"


def _confusion(y_true, y_pred):
    k = len(LABELS)
    cell = np.searchsorted(LABELS, y_true) * k + np.searchsorted(LABELS, y_pred)
    return np.bincount(cell, minlength=k * k).reshape(k, k)


def _frr(y_true, y_pred):
    keyword = y_true != "_unknown_"
    return np.mean(y_pred[keyword] == "_unknown_")


def _far(y_true, y_pred):
    negative = y_true == "_unknown_"
    return np.mean(y_pred[negative] != "_unknown_")


REFERENCE = {
    "mcc": skm.matthews_corrcoef,
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": lambda t, p: skm.balanced_accuracy_score(t, p),
    "macro_f1": lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0),
    "precision": lambda t, p: skm.precision_score(t, p, average="macro", zero_division=0),
    "macro_recall": lambda t, p: skm.recall_score(t, p, average="macro", zero_division=0),
    "frr": _frr,
    "far": _far,
}


def test_every_metric_has_a_reference():
    assert set(REFERENCE) == set(METRICS)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("seed", range(6))
def test_metric_matches_scikit_learn(name, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    # some seeds use only part of the label set, so classes are missing from truth or predictions
    pool = LABELS if seed % 2 == 0 else LABELS[: 3 + seed % 3]
    y_true = rng.choice(pool, n)
    noisy = rng.random(n) < rng.uniform(0.1, 0.6)
    y_pred = np.where(noisy, rng.choice(LABELS, n), y_true)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = REFERENCE[name](y_true, y_pred)
    got = float(compute_metric(name, _confusion(y_true, y_pred), NEGATIVES))
    assert got == pytest.approx(expected, abs=1e-12)


def test_metrics_vectorise_over_leading_axes():
    rng = np.random.default_rng(7)
    stacks = np.stack([_confusion(rng.choice(LABELS, 50), rng.choice(LABELS, 50)) for _ in range(4)])
    for name in METRICS:
        batched = compute_metric(name, stacks.reshape(2, 2, 6, 6), NEGATIVES)
        one_by_one = [float(compute_metric(name, cm, NEGATIVES)) for cm in stacks]
        np.testing.assert_allclose(batched.ravel(), one_by_one)


def test_mcc_is_zero_when_predictions_are_constant_like_scikit_learn():
    y_true = np.array(["yes", "no", "yes", "no"])
    y_pred = np.array(["yes"] * 4)
    assert float(compute_metric("mcc", _confusion(y_true, y_pred), NEGATIVES)) == skm.matthews_corrcoef(
        y_true, y_pred
    )


def test_rates_are_undefined_without_rows_of_their_kind():
    y_true = np.array(["yes", "no"])
    cm = _confusion(y_true, y_true)
    assert np.isnan(compute_metric("far", cm, NEGATIVES))
    assert float(compute_metric("frr", cm, NEGATIVES)) == 0.0
