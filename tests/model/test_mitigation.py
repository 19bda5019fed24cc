"""Mitigation mechanisms, checked exactly: batch composition, weights, held-out weight updates, imbalance."""

import math

import numpy as np
import pandas as pd
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.model.mitigation import (
    HeldoutReweighting,
    balanced_batches,
    group_weights,
    imbalance,
    parse_imbalance,
)


def test_balanced_batches_draw_equally_from_each_group():
    groups = np.array(["f"] * 20 + ["m"] * 80)
    batches = list(balanced_batches(groups, batch_size=16, n_batches=10, seed=0))
    for batch in batches:
        assert len(batch) == 16
        assert (groups[batch] == "f").sum() == 8 and (groups[batch] == "m").sum() == 8
    # the small group is cycled without replacement: every female clip appears before any repeats
    female = [b[groups[b] == "f"] for b in batches]
    assert len(set(np.concatenate(female[:2]).tolist())) == 16
    assert set(np.concatenate(female[:3]).tolist()) == set(range(20))


def test_balanced_batches_spread_the_remainder_and_are_seeded():
    groups = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 10)
    counts = [np.bincount(np.searchsorted(["a", "b", "c"], groups[b]), minlength=3) for b in
              balanced_batches(groups, batch_size=8, n_batches=3, seed=1)]  # fmt: skip
    assert [c.tolist() for c in counts] == [[3, 3, 2], [2, 3, 3], [3, 2, 3]]
    again = list(balanced_batches(groups, 8, 3, seed=1))
    assert all((a == b).all() for a, b in zip(again, balanced_batches(groups, 8, 3, seed=1), strict=True))


def test_reweight_is_inverse_frequency_with_mean_one():
    groups = np.array(["f"] * 20 + ["m"] * 80)
    weights = group_weights(groups)
    assert weights[0] == pytest.approx(100 / (2 * 20)) and weights[-1] == pytest.approx(100 / (2 * 80))
    assert weights.mean() == pytest.approx(1.0)
    assert (weights[groups == "f"].sum()) == pytest.approx(weights[groups == "m"].sum())


def test_heldout_reweighting_moves_weight_to_the_group_that_fails_more():
    train = np.array(["f"] * 30 + ["m"] * 70)
    val = np.array(["f"] * 5 + ["m"] * 5)
    reweighting = HeldoutReweighting(train, val, step_size=1.0)
    assert reweighting.sample_weights().tolist() == [1.0] * 100
    losses = np.array([2.0] * 5 + [1.0] * 5)  # the female group's held-out loss is higher
    weights = reweighting.update(losses)
    raw_f, raw_m = math.exp(0.5), math.exp(-0.5)
    mean = (30 * raw_f + 70 * raw_m) / 100
    assert weights["f"] == pytest.approx(raw_f / mean) and weights["m"] == pytest.approx(raw_m / mean)
    assert reweighting.sample_weights().mean() == pytest.approx(1.0)
    second = reweighting.update(losses)
    assert second["f"] / second["m"] == pytest.approx(math.exp(2.0))  # two steps of exp(1) each
    assert reweighting.history[0]["loss"] == {"f": 2.0, "m": 1.0}


def test_heldout_reweighting_needs_every_group_in_validation():
    with pytest.raises(UsageError, match="missing \\['m'\\]"):
        HeldoutReweighting(np.array(["f", "m"]), np.array(["f"]))


def test_imbalance_removes_whole_speakers_to_the_share_asked():
    frame = pd.DataFrame(
        {"speaker": [f"s{i // 5}" for i in range(200)], "gender": ["female" if (i // 5) % 2 else "male" for i in range(200)]}
    )
    thinned = imbalance(frame, "gender", "female", 0.2, seed=0)
    share = (thinned["gender"] == "female").mean()
    assert share == pytest.approx(0.2)  # 25 female clips (5 speakers) next to 100 male ones
    assert (thinned.groupby("speaker").size() == 5).all()  # no speaker is cut in half
    assert thinned.equals(imbalance(frame, "gender", "female", 0.2, seed=0))
    assert not thinned.equals(imbalance(frame, "gender", "female", 0.2, seed=1))


@pytest.mark.parametrize("text", ["gender", "gender=female", "gender=female:2", "=female:0.2"])
def test_imbalance_flag_is_checked(text):
    with pytest.raises(UsageError, match="must look like gender=female:0.2"):
        parse_imbalance(text)
    assert parse_imbalance("age=a:b:0.3") == ("age", "a:b", 0.3)


@pytest.mark.parametrize("mitigation", ["balanced", "reweight", "reweight-heldout"])
def test_training_runs_under_each_mitigation(mitigation):
    from ondevice_audit.model.train import train_model

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    groups = np.array(["f"] * 15 + ["m"] * 45)
    model, history = train_model(
        "cnn-one-fstride4", x, y, x[:20], y[:20], epochs=2, batch_size=12, learning_rate=0.01, seed=0,
        mitigation=mitigation, train_groups=groups, val_groups=groups[:20][::-1].copy(),
    )  # fmt: skip
    assert len(history["loss"]) == 2 and history["mitigation"]["name"] == mitigation
    if mitigation == "reweight":
        assert history["mitigation"]["sample_weight_by_group"] == pytest.approx({"f": 2.0, "m": 60 / 90})
    if mitigation == "reweight-heldout":
        assert len(history["mitigation"]["group_weight_history"]) == 2
