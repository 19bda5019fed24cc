"""DisparityFrame: flips, forgotten clips and the paired bootstrap of the change in RB between runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.metrics.disparity import DisparityFrame

LABELS = np.array(["yes", "no", "_unknown_"])


@pytest.fixture(scope="module")
def data():
    """600 clips, 40 speakers nested in gender; a reference run worse on male clips, and a run worse still."""
    rng = np.random.default_rng(0)
    n = 600
    speaker = rng.integers(0, 40, n)
    gender = np.where(speaker % 2 == 0, "female", "male")
    accent = np.where(speaker % 3 == 0, "scottish", "us")
    truth = LABELS[rng.integers(0, 3, n)]
    reference = np.where(rng.random(n) < np.where(gender == "male", 0.75, 0.9), truth, LABELS[rng.integers(0, 3, n)])
    degraded = np.where((gender == "male") & (rng.random(n) < 0.15), LABELS[rng.integers(0, 3, n)], reference)
    groups = pd.DataFrame({"gender": gender, "accent": accent})
    return truth, reference, degraded, groups, speaker


def _frame(data, speakers=True, **settings) -> DisparityFrame:
    truth, reference, degraded, groups, speaker = data
    return DisparityFrame(truth, [reference, degraded, reference], groups, speakers=speaker if speakers else None,
                          metric="accuracy", n_boot=400, **settings)  # fmt: skip


def test_flips_and_forgotten_clips_are_counted_per_group(data):
    truth, reference, degraded, groups, _ = data
    frame = _frame(data)
    gender = frame.attributes[0]
    assert gender.name == "gender" and [g.name for g in gender.groups] == ["female", "male"]
    for group in gender.groups:
        members = (groups["gender"] == group.name).to_numpy()
        assert group.flips == [0, int((degraded[members] != reference[members]).sum()), 0]
        right = reference[members] == truth[members]
        assert group.forgotten[1] == int((right & (degraded[members] != truth[members])).sum())
        assert group.reference_correct == int(right.sum())
        assert group.flip_rate(1) == group.flips[1] / members.sum()
        assert group.values[0] == pytest.approx((reference[members] == truth[members]).mean())
    female, male = gender.groups
    assert female.flips[1] == 0 and male.flips[1] > 10
    assert frame.overall.flips[1] == male.flips[1] and frame.overall.n == len(truth)


@pytest.mark.parametrize("speakers", [True, False])
def test_rb_per_run_is_the_rb_group_metric_frame_reports(data, speakers):
    truth, reference, degraded, groups, speaker = data
    frame = _frame(data, speakers)
    for run, predictions in enumerate([reference, degraded]):
        single = GroupMetricFrame(truth, predictions, groups, metric="accuracy",
                                  speakers=speaker if speakers else None, n_boot=0, n_perm=0)  # fmt: skip
        for attribute, expected in zip(frame.attributes, single.attributes, strict=True):
            assert attribute.name == expected.name and attribute.rb[run].rb == pytest.approx(expected.rb.value)
            assert [g.name for g in attribute.groups] == [g.name for g in expected.groups]


@pytest.mark.parametrize("speakers", [True, False])
def test_the_paired_interval_sees_a_change_independent_intervals_cannot(data, speakers):
    truth, reference, degraded, groups, speaker = data
    frame = _frame(data, speakers)
    change = frame.attributes[0].rb[1]
    assert change.difference == pytest.approx(change.rb - frame.attributes[0].rb[0].rb) and change.difference > 0
    assert 0 < change.ci[0] <= change.difference <= change.ci[1], "the degraded run is detectably more biased"
    unchanged = frame.attributes[0].rb[2]
    assert unchanged.difference == 0 and unchanged.ci == (0.0, 0.0)
    separate = [
        GroupMetricFrame(truth, p, groups[["gender"]], metric="accuracy", speakers=speaker if speakers else None,
                         n_boot=400, n_perm=0).attributes[0].rb.ci
        for p in (reference, degraded)
    ]  # fmt: skip
    assert separate[1][0] < separate[0][1], "taken one by one, the two RB intervals overlap"
    assert change.ci[1] - change.ci[0] < (separate[0][1] - separate[0][0]) + (separate[1][1] - separate[1][0])


def test_same_seed_same_interval_and_resampling_is_named(data):
    first, second = _frame(data), _frame(data)
    assert first.attributes[0].rb[1].ci == second.attributes[0].rb[1].ci
    assert first.attributes[0].resampling == "speakers, stratified by group"
    assert _frame(data, speakers=False).attributes[0].resampling == "clips (no speaker column)"
    assert [a.name for a in first.attributes] == ["gender", "accent", "gender × accent"]


def test_bad_input_is_a_usage_error(data):
    truth, reference, _, groups, _ = data
    with pytest.raises(UsageError, match="same length"):
        DisparityFrame(truth, [reference, reference[:-1]], groups)
    with pytest.raises(UsageError, match="at least 100"):
        DisparityFrame(truth, [reference], groups, n_boot=10)
