"""GroupMetricFrame: per-group values, RB, exclusions, undefined cases, resampling and determinism."""

import math

import numpy as np
import pandas as pd
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.metrics.frame import _BAD_BOOT, _BAD_METRIC


def _speaker_data(seed=0, n_speakers=80, clips=20, accuracy=(0.7, 0.9)):
    """Two genders, one per speaker; each speaker has its own accuracy around the group's."""
    rng = np.random.default_rng(seed)
    labels = np.array(["yes", "no", "up", "_unknown_"])
    rows = []
    for s in range(n_speakers):
        gender = "female" if s % 2 == 0 else "male"
        base = accuracy[0] if gender == "female" else accuracy[1]
        p = np.clip(base + rng.normal(0, 0.05), 0.05, 0.99)
        truth = rng.choice(labels, clips)
        right = rng.random(clips) < p
        wrong = np.array([rng.choice(labels[labels != t]) for t in truth])
        for t, ok, w in zip(truth, right, wrong, strict=True):
            rows.append({"label": t, "prediction": t if ok else w, "gender": gender, "speaker": f"s{s}"})
    return pd.DataFrame(rows)


def _frame(data, **kwargs):
    defaults = dict(metric="accuracy", min_group_size=1, n_boot=200, n_perm=200, seed=3)
    defaults.update(kwargs)
    return GroupMetricFrame(
        y_true=data["label"],
        y_pred=data["prediction"],
        sensitive_features=data[["gender"]],
        speakers=data["speaker"] if "speaker" in data else None,
        negative_labels=["_unknown_"],
        **defaults,
    )


def test_group_values_and_rb_match_a_hand_computation():
    data = pd.DataFrame(
        {
            "label": ["a"] * 10 + ["b"] * 10,
            "prediction": ["a"] * 8 + ["b"] * 2 + ["b"] * 5 + ["a"] * 5,
            "gender": ["f"] * 10 + ["m"] * 10,
        }
    )
    frame = _frame(data, n_boot=0, n_perm=0)
    f, m = frame.attributes[0].groups
    assert (f.metrics["accuracy"], m.metrics["accuracy"]) == (0.8, 0.5)
    assert frame.overall["accuracy"] == 0.65
    expected = abs(math.log(0.8 / 0.65)) + abs(math.log(0.5 / 0.65))
    assert frame.attributes[0].rb.value == pytest.approx(expected)
    assert f.log_ratio == pytest.approx(math.log(0.8 / 0.65))
    assert frame.attributes[0].worst_group == "m"


def test_rb_is_undefined_when_a_group_has_negative_mcc():
    # group m predicts the opposite of the truth: its MCC is -1
    data = pd.DataFrame(
        {
            "label": ["a", "b"] * 10 + ["a", "b"] * 10,
            "prediction": ["a", "b"] * 10 + ["b", "a"] * 10,
            "gender": ["f"] * 20 + ["m"] * 20,
            "speaker": [f"f{i % 5}" for i in range(20)] + [f"m{i % 5}" for i in range(20)],
        }
    )
    frame = _frame(data, metric="mcc")
    attribute = frame.attributes[0]
    assert attribute.groups[1].metrics["mcc"] == -1.0
    assert attribute.rb.value is None
    assert attribute.rb.ci is None and attribute.rb.p_value is None
    assert "mcc is not positive for group(s) m" in attribute.rb.undefined_reason or "overall mcc" in (
        attribute.rb.undefined_reason
    )
    assert attribute.groups[1].log_ratio is None


def test_small_groups_are_shown_but_left_out_of_rb():
    data = _speaker_data()
    extra = data.iloc[:5].assign(gender="other", speaker="x")
    frame = _frame(pd.concat([data, extra], ignore_index=True), min_group_size=30)
    groups = {g.name: g for g in frame.attributes[0].groups}
    assert groups["other"].n == 5 and not groups["other"].in_rb
    included = [g for g in groups.values() if g.in_rb]
    ratios = [g.log_ratio for g in included]
    assert frame.attributes[0].rb.value == pytest.approx(sum(abs(r) for r in ratios))


def test_rb_needs_two_groups():
    data = _speaker_data().assign(gender="everyone")
    rb = _frame(data).attributes[0].rb
    assert rb.value is None and rb.undefined_reason == "fewer than two groups have at least 1 clips and two speakers"


def test_speaker_counts_and_stratified_resampling():
    frame = _frame(_speaker_data())
    attribute = frame.attributes[0]
    assert [g.n_speakers for g in attribute.groups] == [40, 40]
    assert attribute.resampling == "speakers, stratified by group"


def test_without_speakers_clips_are_resampled():
    frame = _frame(_speaker_data().drop(columns="speaker"))
    assert frame.attributes[0].resampling == "clips (no speaker column)"
    assert frame.attributes[0].groups[0].n_speakers is None


def test_speaker_clustering_widens_the_interval():
    """Clips of one speaker share its accuracy: resampling clips understates the uncertainty."""
    data = _speaker_data(n_speakers=40, clips=50)
    by_speaker = _frame(data, n_boot=1000).attributes[0].rb.ci
    by_clip = _frame(data.drop(columns="speaker"), n_boot=1000).attributes[0].rb.ci
    assert (by_speaker[1] - by_speaker[0]) > 1.2 * (by_clip[1] - by_clip[0])


def test_same_seed_same_numbers_and_other_seed_other_intervals():
    data = _speaker_data()
    a, b, c = _frame(data, seed=1), _frame(data, seed=1), _frame(data, seed=2)
    assert a.attributes == b.attributes and a.overall_ci == b.overall_ci
    assert a.attributes[0].rb.value == c.attributes[0].rb.value
    assert a.attributes[0].rb.ci != c.attributes[0].rb.ci


def test_adding_a_group_column_does_not_change_another_attributes_numbers():
    data = _speaker_data().assign(accent=lambda d: np.where(d.index % 3 == 0, "us", "gb"))
    alone = _frame(data).attributes[0]
    both = GroupMetricFrame(
        y_true=data["label"], y_pred=data["prediction"], sensitive_features=data[["gender", "accent"]],
        speakers=data["speaker"], negative_labels=["_unknown_"], metric="accuracy", min_group_size=1, n_boot=200,
        n_perm=200, seed=3,
    )  # fmt: skip
    assert both.attributes[0] == alone
    assert [a.name for a in both.attributes] == ["gender", "accent", "gender × accent"]


def test_permutation_p_value_separates_real_from_no_bias():
    biased = _frame(_speaker_data(accuracy=(0.6, 0.9)))
    unbiased = _frame(_speaker_data(accuracy=(0.8, 0.8), seed=5))
    assert biased.attributes[0].rb.p_value < 0.01
    assert unbiased.attributes[0].rb.p_value > 0.05
    assert biased.attributes[0].rb.permutations_used == 200


def test_missing_group_values_form_their_own_group():
    data = _speaker_data()
    data.loc[data["speaker"] == "s0", "gender"] = ""
    names = [g.name for g in _frame(data).attributes[0].groups]
    assert "(missing)" in names


def test_by_group_table_has_every_metric():
    table = _frame(_speaker_data()).by_group
    assert {"mcc", "accuracy", "balanced_accuracy", "macro_f1", "precision", "macro_recall", "frr", "far"} <= set(table)
    assert list(table.index) == [("gender", "female"), ("gender", "male")]


def test_invalid_settings_have_exact_messages():
    data = _speaker_data()
    with pytest.raises(UsageError) as error:
        _frame(data, metric="f2")
    assert str(error.value) == _BAD_METRIC.format(
        name="f2", choices="mcc, accuracy, balanced_accuracy, macro_f1, precision, macro_recall, frr, far"
    )
    with pytest.raises(UsageError) as error:
        _frame(data, n_boot=10)
    assert str(error.value) == _BAD_BOOT.format(n=10)


def test_frr_needs_negative_labels():
    data = _speaker_data()
    data = data[data["label"] != "_unknown_"]
    data = data[data["prediction"] != "_unknown_"]
    with pytest.raises(UsageError, match="needs negative labels"):
        _frame(data, metric="frr")
