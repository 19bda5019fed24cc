"""Detector metrics checked against plain numpy: per-group rates, the population's threshold, EER and DET."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics.detection import DetectionFrame, OperatingPoint, equal_error_rate


@pytest.fixture(scope="module")
def clips() -> pd.DataFrame:
    """Two groups of 12 speakers; group b's positives score lower, so it is detected less often."""
    rng = np.random.default_rng(0)
    rows = []
    for group, shift in (("a", 0.0), ("b", -0.8)):
        for speaker in range(12):
            for clip in range(10):
                positive = clip < 4
                mean = (1.2 + shift) if positive else -1.0
                rows.append((f"{group}{speaker}", group, positive, mean + rng.standard_normal(), 1.0 + 0.1 * clip))
    frame = pd.DataFrame(rows, columns=["speaker", "group", "positive", "logit", "seconds"])
    frame["score"] = 1 / (1 + np.exp(-frame["logit"]))
    return frame


def _frame(clips: pd.DataFrame, point: OperatingPoint, **kwargs: object) -> DetectionFrame:
    return DetectionFrame(positive=clips["positive"], scores=clips["score"], sensitive_features=clips[["group"]],
                          point=point, speakers=clips["speaker"], durations=clips["seconds"], min_group_size=10,
                          **kwargs)  # type: ignore[arg-type]  # fmt: skip


def _by_hand(part: pd.DataFrame, threshold: float) -> dict[str, float]:
    accepted = part["score"].to_numpy() >= threshold
    pos = part["positive"].to_numpy()
    tp, fn = (accepted & pos).sum(), (~accepted & pos).sum()
    fp, tn = (accepted & ~pos).sum(), (~accepted & ~pos).sum()
    hours = part.loc[~pos, "seconds"].sum() / 3600
    return {"tpr": tp / (tp + fn), "frr": fn / (tp + fn), "far": fp / (fp + tn), "fa_per_hour": fp / hours,
            "precision": tp / (tp + fp)}  # fmt: skip


def test_rates_per_group_at_a_given_threshold(clips: pd.DataFrame) -> None:
    frame = _frame(clips, OperatingPoint(threshold=0.5), n_boot=200, n_perm=200)
    assert frame.threshold == 0.5
    for group in frame.attributes[0].groups:
        expected = _by_hand(clips[clips["group"] == group.name], 0.5)
        for name, value in expected.items():
            assert group.metrics[name] == pytest.approx(value), (group.name, name)
    assert frame.overall["tpr"] == pytest.approx(_by_hand(clips, 0.5)["tpr"])
    rb = frame.attributes[0].rb
    values = [g.metrics["tpr"] for g in frame.attributes[0].groups]
    assert rb.value == pytest.approx(sum(abs(np.log(v / frame.overall["tpr"])) for v in values))
    assert rb.ci is not None and rb.ci[0] <= rb.value <= rb.ci[1] and rb.p_value is not None and rb.p_value < 0.05
    assert frame.attributes[0].worst_group == "b"


def test_at_far_chooses_one_threshold_on_the_population(clips: pd.DataFrame) -> None:
    frame = _frame(clips, OperatingPoint(at_far=0.05), n_boot=200, n_perm=0)
    negatives = np.sort(clips.loc[~clips["positive"], "score"].to_numpy())
    allowed = [t for t in negatives if (negatives >= t).mean() <= 0.05]
    assert frame.threshold == pytest.approx(min(allowed))
    assert frame.overall["far"] <= 0.05
    for group in frame.attributes[0].groups:  # the same threshold for every group
        assert group.metrics["far"] == pytest.approx(_by_hand(clips[clips["group"] == group.name], frame.threshold)["far"])
    assert frame.threshold_ci is not None and frame.threshold_ci[0] <= frame.threshold <= frame.threshold_ci[1]


def test_fa_per_hour_operating_point(clips: pd.DataFrame) -> None:
    frame = _frame(clips, OperatingPoint(at_fa_per_hour=200.0), n_boot=0, n_perm=0)
    assert _by_hand(clips, frame.threshold)["fa_per_hour"] <= 200.0
    negatives = clips.loc[~clips["positive"], "score"].to_numpy()
    lower = negatives[negatives < frame.threshold].max()  # the next negative it would accept
    assert _by_hand(clips, lower)["fa_per_hour"] > 200.0


def _eer_by_hand(scores: np.ndarray, positive: np.ndarray) -> float:
    """Thresholds from below every score to above every score; EER where FRR - FAR changes sign."""
    thresholds = np.concatenate([[-np.inf], np.unique(scores), [np.inf]])
    far = np.array([(scores[~positive] >= t).mean() for t in thresholds])
    frr = np.array([(scores[positive] < t).mean() for t in thresholds])
    i = int(np.argmax(frr - far >= 0))
    g0, g1 = frr[i - 1] - far[i - 1], frr[i] - far[i]
    share = -g0 / (g1 - g0) if g1 > g0 else 0.0
    return frr[i - 1] + share * (frr[i] - frr[i - 1])


def test_eer_and_det_points_match_a_direct_computation(clips: pd.DataFrame) -> None:
    frame = _frame(clips, OperatingPoint(threshold=0.5), n_boot=200, n_perm=0)
    for curve in frame.curves["group"]:
        part = clips[clips["group"] == curve.name]
        scores, positive = part["score"].to_numpy(), part["positive"].to_numpy()
        assert curve.eer == pytest.approx(_eer_by_hand(scores, positive))
        assert curve.eer_ci is not None and curve.eer_ci[0] <= curve.eer <= curve.eer_ci[1]
        for far, frr in curve.det:  # every DET point is the rates at some threshold
            assert any(np.isclose(far, (scores[~positive] >= t).mean()) and np.isclose(frr, (scores[positive] < t).mean())
                       for t in np.concatenate([[-np.inf], np.unique(scores), [np.inf]]))  # fmt: skip
        assert curve.det[0] == (1.0, 0.0) and curve.det[-1] == (0.0, 1.0)
        assert curve.operating_point == pytest.approx(((scores[~positive] >= 0.5).mean(), (scores[positive] < 0.5).mean()))


def test_eer_of_separable_and_tied_scores() -> None:
    ones = np.ones((1, 4))
    assert equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True]), ones)[0] == 0.0
    assert equal_error_rate(np.array([0.5, 0.5, 0.5, 0.5]), np.array([False, True, False, True]), ones)[0] == 0.5


def test_same_seed_same_numbers(clips: pd.DataFrame) -> None:
    first = _frame(clips, OperatingPoint(at_far=0.1), n_boot=200, n_perm=200)
    again = _frame(clips, OperatingPoint(at_far=0.1), n_boot=200, n_perm=200)
    assert first.attributes == again.attributes and first.threshold_ci == again.threshold_ci


@pytest.mark.parametrize(
    ("point", "kwargs", "message"),
    [
        (dict(threshold=0.5, at_far=0.1), {}, "exactly one of --threshold, --at-far"),
        (dict(threshold=float("nan")), {}, "finite"),
        (dict(at_far=1.5), {}, "share of negative clips"),
    ],
)
def test_bad_operating_points(point: dict[str, float], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        OperatingPoint(**point)


def test_no_negatives_leaves_far_undefined_and_at_far_refused(clips: pd.DataFrame) -> None:
    positives = clips[clips["positive"]].reset_index(drop=True)
    with pytest.raises(UsageError, match="no negative clip"):
        _frame(positives, OperatingPoint(at_far=0.01), n_boot=0, n_perm=0)
    frame = _frame(positives, OperatingPoint(threshold=0.5), n_boot=0, n_perm=0)
    assert frame.overall["far"] is None and frame.overall["tpr"] is not None


def _on_polyline(point: tuple[float, float], line: list[tuple[float, float]]) -> bool:
    """Whether ``point`` lies on one of the segments between consecutive points of ``line``."""
    x, y = point
    for (x0, y0), (x1, y1) in zip(line, line[1:], strict=False):
        cross = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
        inside = min(x0, x1) - 1e-12 <= x <= max(x0, x1) + 1e-12 and min(y0, y1) - 1e-12 <= y <= max(y0, y1) + 1e-12
        if abs(cross) < 1e-12 and inside:
            return True
    return False


def test_the_det_curve_passes_through_the_operating_point_and_every_threshold(clips: pd.DataFrame) -> None:
    frame = _frame(clips, OperatingPoint(at_far=0.05), n_boot=0, n_perm=0)
    for curve in frame.curves["group"]:
        part = clips[clips["group"] == curve.name]
        assert _on_polyline(curve.operating_point, curve.det)
        for threshold in np.unique(part["score"]):  # the step function at every threshold is on the drawn line
            rates = _by_hand(part, threshold)
            assert _on_polyline((rates["far"], rates["frr"]), curve.det), (curve.name, threshold)
